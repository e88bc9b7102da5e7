"""Rule `minhash`: MinHash signatures and exact hashes of one corpus shard."""

from locallm.data.dedup import minhash_shard
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    minhash_shard(
        corpus=snakemake.input.corpus,
        settings=snakemake.params.settings,
        output=snakemake.output.signatures,
    )
