from locallm.annotate.outputs import gather_annotations
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    gather_annotations(
        shards=list(snakemake.input.shards),
        input_table=snakemake.input.table,
        input_counts=snakemake.input.counts,
        choice=snakemake.input.choice,
        labels=snakemake.params.labels,
        passages=snakemake.output.passages,
        documents=snakemake.output.documents,
        accounting=snakemake.output.accounting,
    )
