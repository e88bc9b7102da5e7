from locallm.data.sotu import export_sotu
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    export_sotu(output=snakemake.output[0])
