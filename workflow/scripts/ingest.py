from locallm.data.ingest import ingest_shard
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    ingest_shard(
        files=list(snakemake.input.files),
        shard=snakemake.wildcards.shard,
        settings=snakemake.params.settings,
        kept=snakemake.output.kept,
        rejects=snakemake.output.rejects,
        counts=snakemake.output.counts,
        whole_files=snakemake.params.whole_files,
    )
