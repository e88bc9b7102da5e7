from locallm.infer.predict import infer_shard
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    infer_shard(
        table=snakemake.input.table,
        output=snakemake.output[0],
        shard=int(snakemake.wildcards.shard),
        settings=snakemake.params.settings,
        task=snakemake.params.task,
        model_settings=snakemake.params.model,
        metadata_columns=snakemake.params.metadata,
        seed=snakemake.params.seed,
        variant=snakemake.wildcards.variant,
        stage=snakemake.wildcards.stage,
        base_dir=snakemake.input.get("base"),
        adapter_dir=snakemake.input.get("adapter"),
        examples_table=snakemake.input.get("examples"),
        threads=snakemake.threads,
    )
