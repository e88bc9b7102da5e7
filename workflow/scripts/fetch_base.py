from locallm.logs import log_to
from locallm.model.fetching import fetch_base

with log_to(snakemake.log[0]):
    fetch_base(settings=snakemake.params.settings, marker=snakemake.output[0])
