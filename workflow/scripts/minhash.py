"""Rule `minhash`: MinHash signatures, exact hashes and LSH band keys of one corpus shard."""

from locallm.data.minhash import minhash_shard
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    minhash_shard(
        corpus=snakemake.input.corpus,
        settings=snakemake.params.settings,
        output=snakemake.output.signatures,
        bands=snakemake.output.bands,
    )
