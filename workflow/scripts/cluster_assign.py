from locallm.data.clustering import assign_shard
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    assign_shard(
        model=snakemake.input.model,
        corpus=snakemake.input.corpus,
        settings=snakemake.params.settings,
        assignments=snakemake.output.assignments,
        terms=snakemake.output.terms,
        bins=snakemake.output.bins,
        examples=snakemake.output.examples,
    )
