from locallm.fetching import fetch_base
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    fetch_base(settings=snakemake.params.settings, marker=snakemake.output[0])
