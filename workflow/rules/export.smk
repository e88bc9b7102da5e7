# Rules of export: a variant x stage as model.gguf with an Ollama Modelfile and a README, and the
# record of which one export.use chose.


rule export_gguf:
    input:
        unpack(PLAN.export_job_input),
    output:
        directory(PATHS.export),
    log:
        PATHS.log("export_gguf/{variant}/{stage}"),
    benchmark:
        PATHS.benchmark("export_gguf/{variant}/{stage}")
    conda:
        "../../envs/locallm.yaml"
    threads: PLAN.threads("export_gguf")
    resources:
        **PLAN.resources("export_gguf"),
    params:
        settings=config["export"],
        task=config["task"],
        inference=PLAN.inference_settings.params(),
        model=PLAN.loading_params,
        model_path=PLAN.export_job_model_path,
        base=PLAN.variant_base,
        seed=config["seed"],
    script:
        "../scripts/export_gguf.py"


rule export_chosen:
    input:
        metrics=PATHS.metrics,
        folder=CHOSEN_EXPORT,
    output:
        PATHS.export_chosen,
    log:
        PATHS.log("export_chosen/export_chosen"),
    benchmark:
        PATHS.benchmark("export_chosen/export_chosen")
    conda:
        "../../envs/locallm.yaml"
    params:
        settings=config["export"],
        folder=PLAN.export_pattern,
    script:
        "../scripts/export_chosen.py"
