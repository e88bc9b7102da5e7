from locallm.evaluation.perplexity import perplexity_stage
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    perplexity_stage(
        table=snakemake.input.table,
        output=snakemake.output[0],
        settings=snakemake.params.settings,
        model_settings=snakemake.params.model,
        seed=snakemake.params.seed,
        variant=snakemake.wildcards.variant,
        stage=snakemake.wildcards.stage,
        base_dir=snakemake.input.get("base"),
        adapter_dir=snakemake.input.get("adapter"),
        threads=snakemake.threads,
    )
