"""Rule `dedup`: exact and near duplicates over all signature shards."""

from locallm.data.dedup import dedup
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    dedup(
        signatures=list(snakemake.input.signatures),
        settings=snakemake.params.settings,
        output=snakemake.output.duplicates,
    )
