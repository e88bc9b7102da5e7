from locallm.logs import log_to
from locallm.task.prompts import build_sft

with log_to(snakemake.log[0]):
    build_sft(
        split_table=snakemake.input[0],
        output=snakemake.output[0],
        task=snakemake.params.task,
        split=snakemake.wildcards.split,
        seed=snakemake.params.seed,
    )
