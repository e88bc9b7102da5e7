from locallm.annotate.choice import write_choice
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    write_choice(
        metrics=snakemake.input.metrics,
        use=snakemake.params.use,
        good_enough=snakemake.params.good_enough,
        output=snakemake.output[0],
    )
