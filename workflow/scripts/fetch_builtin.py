from locallm.builtin_models import fetch_builtin
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    fetch_builtin(
        base=snakemake.params.base, output=snakemake.output[0], cache=snakemake.params.cache
    )
