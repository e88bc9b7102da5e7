"""Rule `dedup_bucket`: exact links and LSH candidate pairs of one bucket of band keys."""

from locallm.data.dedup import dedup_bucket
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    dedup_bucket(
        bands=list(snakemake.input.bands),
        bucket=int(snakemake.wildcards.bucket),
        buckets=snakemake.params.buckets,
        settings=snakemake.params.settings,
        output=snakemake.output.pairs,
    )
