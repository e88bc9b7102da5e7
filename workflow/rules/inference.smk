# Rules of batched inference: infer per variant x stage x shard, then gather per variant x stage.
# Their input functions live in common.smk.


rule infer:
    input:
        unpack(PLAN.infer_input),
    output:
        PATHS.prediction_shard,
    log:
        PATHS.log("infer/{variant}/{stage}/{shard}"),
    benchmark:
        PATHS.benchmark("infer/{variant}/{stage}/{shard}")
    conda:
        "../../envs/locallm.yaml"
    threads: PLAN.threads("infer")
    resources:
        **PLAN.resources("infer"),
    params:
        settings=PLAN.inference_settings.params(),
        task=config["task"],
        model=PLAN.loading_params,
        metadata=PLAN.prediction_metadata,
        seed=config["seed"],
    script:
        "../scripts/infer.py"


rule gather_predictions:
    input:
        expand(
            PATHS.prediction_shard,
            shard=INFER_SHARDS,
            allow_missing=True,
        ),
    output:
        report(
            PATHS.predictions,
            caption="../report/predictions.rst",
            category="Predictions",
            subcategory="{variant}",
            labels={"variant": "{variant}", "stage": "{stage}"},
        ),
    log:
        PATHS.log("gather_predictions/{variant}/{stage}"),
    benchmark:
        PATHS.benchmark("gather_predictions/{variant}/{stage}")
    conda:
        "../../envs/locallm.yaml"
    script:
        "../scripts/gather_predictions.py"
