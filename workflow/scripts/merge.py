from locallm.logs import log_to
from locallm.train.training import merge_stage

with log_to(snakemake.log[0]):
    merge_stage(
        stage=snakemake.input.stage,
        base_path=snakemake.params.base_path,
        settings=snakemake.params.settings,
        output=snakemake.output[0],
    )
