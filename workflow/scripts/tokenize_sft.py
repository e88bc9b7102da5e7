from locallm.logs import log_to
from locallm.train.tokenization import tokenize_splits

with log_to(snakemake.log[0]):
    tokenize_splits(
        sft_tables={"train": snakemake.input.train, "validation": snakemake.input.validation},
        base_path=snakemake.params.base_path,
        settings=snakemake.params.settings,
        output=snakemake.output.data,
        report=snakemake.output.report,
        histogram=snakemake.output.histogram,
    )
