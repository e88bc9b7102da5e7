"""Rule `dedup`: confirm the buckets' candidate pairs and write the duplicates table."""

from locallm.data.dedup import dedup
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    dedup(
        pairs=list(snakemake.input.pairs),
        signatures=list(snakemake.input.signatures),
        settings=snakemake.params.settings,
        output=snakemake.output.duplicates,
    )
