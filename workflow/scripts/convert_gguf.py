from locallm.gguf_bases import convert_gguf
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    convert_gguf(gguf=snakemake.input[0], output=snakemake.output[0], threads=snakemake.threads)
