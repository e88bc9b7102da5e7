from locallm.evaluation.evaluate import evaluate
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    evaluate(
        predictions=list(snakemake.input.predictions),
        perplexities=list(snakemake.input.perplexities),
        train=snakemake.input.train,
        task=snakemake.params.task,
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        metrics_tsv=snakemake.output.metrics,
        confusion_tsv=snakemake.output.confusion,
        reliability_tsv=snakemake.output.reliability,
        comparison_png=snakemake.output.comparison,
        confusion_png=snakemake.output.confusion_png,
        calibration_png=snakemake.output.calibration,
        decision_md=snakemake.output.decision,
    )
