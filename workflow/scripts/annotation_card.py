from locallm.annotate.card import write_card
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    write_card(
        choice=snakemake.input.choice,
        metrics=snakemake.input.metrics,
        estimates=snakemake.input.estimates,
        accounting=snakemake.input.accounting,
        labels=snakemake.params.labels,
        output=snakemake.output[0],
    )
