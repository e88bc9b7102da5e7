from locallm.logs import log_to
from locallm.task.splits import split_corpus

with log_to(snakemake.log[0]):
    split_corpus(
        filtered=list(snakemake.input.filtered),
        duplicates=snakemake.input.duplicates,
        settings=snakemake.params.settings,
        task=snakemake.params.task,
        seed=snakemake.params.seed,
        outputs={
            "train": snakemake.output.train,
            "validation": snakemake.output.validation,
            "test": snakemake.output.test,
        },
        rejects=snakemake.output.rejects,
        report=snakemake.output.report,
    )
