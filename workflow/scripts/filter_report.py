"""Rule `filter_report`: rows per rule and kept, per shard and in total; checks the accounting."""

from locallm.filtering.report import filter_report
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    filter_report(
        corpus=list(snakemake.input.corpus),
        kept=list(snakemake.input.kept),
        rejects=list(snakemake.input.rejects),
        output=snakemake.output[0],
    )
