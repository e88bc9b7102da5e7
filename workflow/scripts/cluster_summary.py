from locallm.data.clustering import summarise
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    summarise(
        model=snakemake.input.model,
        terms=list(snakemake.input.terms),
        bins=list(snakemake.input.bins),
        examples=list(snakemake.input.examples),
        corpus=list(snakemake.input.corpus),
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        summary=snakemake.output.summary,
        map_png=snakemake.output.map,
        shares_tsv=snakemake.output.shares,
        shares_png=snakemake.output.shares_png,
    )
