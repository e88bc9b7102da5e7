from locallm.export.job import export_model
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    export_model(
        model_dir=snakemake.params.model_path,
        output=snakemake.output[0],
        settings=snakemake.params.settings,
        task=snakemake.params.task,
        inference=snakemake.params.inference,
        model_settings=snakemake.params.model,
        facts={
            "variant": snakemake.wildcards.variant,
            "stage": snakemake.wildcards.stage,
            "base": snakemake.params.base,
        },
        table=snakemake.input.table,
        examples_table=snakemake.input.get("examples"),
        seed=snakemake.params.seed,
        threads=snakemake.threads,
    )
