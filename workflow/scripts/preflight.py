from locallm.logs import log_to
from locallm.model.preflight import write_preflight

with log_to(snakemake.log[0]):
    write_preflight(
        config=snakemake.params.config,
        output=snakemake.output[0],
        lengths=dict(snakemake.params.lengths),
    )
