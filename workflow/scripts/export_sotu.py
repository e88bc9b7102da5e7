from locallm.logs import log_to
from locallm.sotu import export_sotu

with log_to(snakemake.log[0]):
    export_sotu(output=snakemake.output[0])
