from locallm.export.choice import write_choice
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    write_choice(
        settings=snakemake.params.settings,
        metrics_tsv=snakemake.input.metrics,
        output=snakemake.output[0],
        folder_pattern=snakemake.params.folder,
    )
