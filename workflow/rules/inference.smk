# Rules of batched inference: infer per variant x stage x shard, then gather per variant x stage.
# Their input functions live in common.smk.


rule infer:
    input:
        unpack(infer_input),
    output:
        "results/predictions/{variant}/{stage}/{shard}.parquet",
    log:
        "logs/infer/{variant}/{stage}/{shard}.log",
    benchmark:
        "benchmarks/infer/{variant}/{stage}/{shard}.tsv"
    conda:
        "../../envs/locallm.yaml"
    threads: PLAN.threads("infer")
    resources:
        **PLAN.resources("infer"),
    params:
        settings=PLAN.inference_settings.params(),
        task=config["task"],
        model=loading_settings,
        metadata=PLAN.prediction_metadata,
        seed=config["seed"],
    script:
        "../scripts/infer.py"


rule gather_predictions:
    input:
        expand(
            "results/predictions/{{variant}}/{{stage}}/{shard}.parquet",
            shard=INFER_SHARDS,
        ),
    output:
        report(
            "results/predictions/{variant}/{stage}.parquet",
            caption="../report/predictions.rst",
            category="Predictions",
            subcategory="{variant}",
            labels={"variant": "{variant}", "stage": "{stage}"},
        ),
    log:
        "logs/gather_predictions/{variant}/{stage}.log",
    benchmark:
        "benchmarks/gather_predictions/{variant}/{stage}.tsv"
    conda:
        "../../envs/locallm.yaml"
    script:
        "../scripts/gather_predictions.py"
