"""Rule `filter`: quality rules, duplicates and clusters on one corpus shard."""

from locallm.filtering.shard import filter_shard
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    filter_shard(
        corpus=snakemake.input.corpus,
        duplicates=snakemake.input.duplicates,
        clusters=snakemake.input.clusters,
        all_clusters=list(snakemake.input.all_clusters),
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        kept=snakemake.output.kept,
        rejects=snakemake.output.rejects,
    )
