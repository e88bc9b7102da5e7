from locallm.data.ingest_report import write_ingest_report
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    write_ingest_report(
        kept=list(snakemake.input.kept),
        rejects=list(snakemake.input.rejects),
        counts=list(snakemake.input.counts),
        shards=list(snakemake.params.shards),
        output=snakemake.output[0],
    )
