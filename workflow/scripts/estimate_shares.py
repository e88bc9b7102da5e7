from locallm.annotate.estimates import estimate
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    estimate(
        passages=snakemake.input[0],
        task=snakemake.params.task,
        settings=snakemake.params.settings,
        n_boot=snakemake.params.bootstrap,
        seed=snakemake.params.seed,
        estimates_tsv=snakemake.output.tsv,
        estimates_png=snakemake.output.png,
    )
