from locallm.infer.predict import gather_predictions
from locallm.logs import log_to

with log_to(snakemake.log[0]):
    gather_predictions(shards=list(snakemake.input), output=snakemake.output[0])
