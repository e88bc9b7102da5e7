from locallm.annotate.outputs import write_csv_copies
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    write_csv_copies(
        tables={"passages": snakemake.input.passages, "documents": snakemake.input.documents},
        outputs={"passages": snakemake.output.passages, "documents": snakemake.output.documents},
    )
