# Rules of evaluation: perplexity per variant x stage on the validation split, then one evaluate
# job comparing every variant x stage with the gold labels and the baselines.
# Input functions: common.smk.


rule perplexity:
    input:
        unpack(PLAN.perplexity_input),
    output:
        PATHS.perplexity,
    log:
        PATHS.log("perplexity/{variant}/{stage}"),
    benchmark:
        PATHS.benchmark("perplexity/{variant}/{stage}")
    conda:
        "../../envs/locallm.yaml"
    threads: PLAN.threads("perplexity")
    resources:
        **PLAN.resources("perplexity"),
    params:
        settings=PLAN.perplexity_settings.params(),
        model=PLAN.loading_params,
        seed=config["seed"],
    script:
        "../scripts/perplexity.py"


# A checkpoint: export.use `decision` reads its metrics to pick the model to export.
checkpoint evaluate:
    input:
        predictions=PLAN.predictions,
        perplexities=PLAN.perplexity_tables,
        train=PATHS.split.format(split="train"),
    output:
        metrics=report(
            PATHS.metrics,
            caption="../report/metrics.rst",
            category="Evaluation",
            subcategory="Tables",
        ),
        confusion=report(
            PATHS.confusion,
            caption="../report/confusion_tsv.rst",
            category="Evaluation",
            subcategory="Tables",
        ),
        reliability=report(
            PATHS.reliability,
            caption="../report/reliability.rst",
            category="Evaluation",
            subcategory="Tables",
        ),
        comparison=report(
            PATHS.comparison,
            caption="../report/comparison.rst",
            category="Evaluation",
            subcategory="Plots",
        ),
        confusion_png=report(
            PATHS.confusion_png,
            caption="../report/confusion.rst",
            category="Evaluation",
            subcategory="Plots",
        ),
        calibration=report(
            PATHS.calibration,
            caption="../report/calibration.rst",
            category="Evaluation",
            subcategory="Plots",
        ),
        decision=report(
            PATHS.decision,
            caption="../report/decision.rst",
            category="Evaluation",
            subcategory="Tables",
        ),
    log:
        PATHS.log("evaluate/evaluate"),
    benchmark:
        PATHS.benchmark("evaluate/evaluate")
    conda:
        "../../envs/locallm.yaml"
    resources:
        **PLAN.resources("evaluate"),
    params:
        settings=config["evaluation"],
        task=config["task"],
        seed=config["seed"],
    script:
        "../scripts/evaluate.py"
