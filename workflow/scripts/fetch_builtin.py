from locallm.logs import log_to
from locallm.model.builtin import fetch_builtin

with log_to(snakemake.log[0]):
    fetch_builtin(
        base=snakemake.params.base, output=snakemake.output[0], cache=snakemake.params.cache
    )
