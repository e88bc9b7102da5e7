from pathlib import Path

from locallm.annotate.job import annotate_shard
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    annotate_shard(
        table=snakemake.input.table,
        choice=snakemake.input.choice,
        output=snakemake.output[0],
        partial_dir=snakemake.params.partial,
        shard=int(snakemake.wildcards.shard),
        shards=snakemake.params.shards,
        chunk_rows=snakemake.params.chunk_rows,
        settings=snakemake.params.settings,
        task=snakemake.params.task,
        models=snakemake.params.models,
        seed=snakemake.params.seed,
        # The repository this script belongs to: its git commit is recorded on every row.
        repo=Path(snakemake.scriptdir).resolve().parents[1],
        train=snakemake.input.get("train"),
        test=snakemake.input.get("test"),
        threads=snakemake.threads,
    )
