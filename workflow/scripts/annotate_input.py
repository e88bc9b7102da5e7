from locallm.annotate.population import annotation_input
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    annotation_input(
        filtered=list(snakemake.input.get("filtered", [])),
        splits={
            s: snakemake.input[s]
            for s in ("train", "validation", "test")
            if s in snakemake.input.keys()
        },
        settings=snakemake.params.settings,
        corpus_settings=snakemake.params.corpus,
        seed=snakemake.params.seed,
        output=snakemake.output.table,
        rejects=snakemake.output.rejects,
        counts=snakemake.output.counts,
    )
