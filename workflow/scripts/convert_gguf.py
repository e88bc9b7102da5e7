from locallm.logs import log_to
from locallm.model.gguf_files import convert_gguf

with log_to(snakemake.log[0]):
    convert_gguf(gguf=snakemake.input[0], output=snakemake.output[0], threads=snakemake.threads)
