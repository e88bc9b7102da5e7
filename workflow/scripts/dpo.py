from locallm.logs import log_to
from locallm.train.launch import run_stage

with log_to(snakemake.log[0]):
    run_stage(
        "dpo",
        num_processes=snakemake.params.settings["num_processes"],
        sft=snakemake.input.sft,
        preferences=snakemake.input.preferences,
        base_path=snakemake.params.base_path,
        settings=snakemake.params.settings,
        output=snakemake.output[0],
        checkpoints=snakemake.params.checkpoints,
        seed=snakemake.params.seed,
        threads=snakemake.threads,
    )
