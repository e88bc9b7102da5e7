from locallm.logs import log_to
from locallm.model.tiny import bootstrap_base

with log_to(snakemake.log[0]):
    bootstrap_base(
        train=snakemake.input.train,
        output=snakemake.output[0],
        tiny=snakemake.params.tiny,
        seed=snakemake.params.seed,
        threads=snakemake.threads,
    )
