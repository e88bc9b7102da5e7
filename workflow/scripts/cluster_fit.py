from locallm.data.clustering import fit_model
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    fit_model(
        corpus=list(snakemake.input.corpus),
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        model=snakemake.output.model,
    )
