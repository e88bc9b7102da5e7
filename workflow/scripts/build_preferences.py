from locallm.logs import log_to
from locallm.task.prompts import build_preferences

with log_to(snakemake.log[0]):
    build_preferences(
        split_table=snakemake.input.split,
        output=snakemake.output.pairs,
        rejects=snakemake.output.rejects,
        task=snakemake.params.task,
        split=snakemake.wildcards.split,
        seed=snakemake.params.seed,
    )
