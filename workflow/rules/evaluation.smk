# Rules of evaluation: perplexity per variant x stage on the validation split, then one evaluate
# job comparing every variant x stage with the gold labels and the baselines.
# Input functions: common.smk.


rule perplexity:
    input:
        unpack(perplexity_input),
    output:
        "results/eval/perplexity/{variant}/{stage}.parquet",
    log:
        "logs/perplexity/{variant}/{stage}.log",
    benchmark:
        "benchmarks/perplexity/{variant}/{stage}.tsv"
    conda:
        "../../envs/locallm.yaml"
    threads: INFERENCE_THREADS
    resources:
        mem_mb=config["inference"]["mem_mb"],
        runtime=config["inference"]["runtime"],
        gpu=inference_gpus,
        gpu_mem_mb=inference_gpu_mem_mb,
    params:
        settings=PLAN.perplexity_settings.params(),
        model=loading_settings,
        seed=config["seed"],
    script:
        "../scripts/perplexity.py"


# A checkpoint: export.use `decision` reads its metrics to pick the model to export.
checkpoint evaluate:
    input:
        predictions=PLAN.predictions,
        perplexities=PLAN.perplexity_tables,
        train="results/splits/train.parquet",
    output:
        metrics=report(
            "results/eval/metrics.tsv",
            caption="../report/metrics.rst",
            category="Evaluation",
            subcategory="Tables",
        ),
        confusion=report(
            "results/eval/confusion.tsv",
            caption="../report/confusion_tsv.rst",
            category="Evaluation",
            subcategory="Tables",
        ),
        reliability=report(
            "results/eval/reliability.tsv",
            caption="../report/reliability.rst",
            category="Evaluation",
            subcategory="Tables",
        ),
        comparison=report(
            "results/eval/comparison.png",
            caption="../report/comparison.rst",
            category="Evaluation",
            subcategory="Plots",
        ),
        confusion_png=report(
            "results/eval/confusion.png",
            caption="../report/confusion.rst",
            category="Evaluation",
            subcategory="Plots",
        ),
        calibration=report(
            "results/eval/calibration.png",
            caption="../report/calibration.rst",
            category="Evaluation",
            subcategory="Plots",
        ),
        decision=report(
            "results/eval/decision.md",
            caption="../report/decision.rst",
            category="Evaluation",
            subcategory="Tables",
        ),
    log:
        "logs/evaluate/evaluate.log",
    benchmark:
        "benchmarks/evaluate/evaluate.tsv"
    conda:
        "../../envs/locallm.yaml"
    resources:
        mem_mb=2000,
    params:
        settings=config["evaluation"],
        task=config["task"],
        seed=config["seed"],
    script:
        "../scripts/evaluate.py"
