# Rules of export: a variant x stage as model.gguf with an Ollama Modelfile and a README, and the
# record of which one export.use chose. Input functions: common.smk.


rule export_gguf:
    input:
        unpack(export_input),
    output:
        directory("results/export/{variant}/{stage}"),
    log:
        "logs/export_gguf/{variant}/{stage}.log",
    benchmark:
        "benchmarks/export_gguf/{variant}/{stage}.tsv"
    conda:
        "../../envs/locallm.yaml"
    threads: INFERENCE_THREADS
    resources:
        mem_mb=config["inference"]["mem_mb"],
        runtime=config["inference"]["runtime"],
    params:
        settings=config["export"],
        task=config["task"],
        inference=PLAN.inference_settings.params(),
        model=loading_settings,
        model_path=export_model_path,
        base=variant_base,
        seed=config["seed"],
    script:
        "../scripts/export_gguf.py"


rule export_chosen:
    input:
        metrics="results/eval/metrics.tsv",
        folder=chosen_export,
    output:
        "results/export/chosen.json",
    log:
        "logs/export_chosen/export_chosen.log",
    benchmark:
        "benchmarks/export_chosen/export_chosen.tsv"
    conda:
        "../../envs/locallm.yaml"
    params:
        settings=config["export"],
    script:
        "../scripts/export_chosen.py"
