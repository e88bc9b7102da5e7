from pathlib import Path

from locallm.logs import log_to
from locallm.report.archive import write_archive

with log_to(snakemake.log[0]):
    write_archive(
        output=snakemake.output[0],
        # The repository this script belongs to: its files are the archive's code.
        repo=Path(snakemake.scriptdir).resolve().parents[1],
        config_yaml=snakemake.input.config,
        checksums_tsv=snakemake.input.checksums,
        environment_json=snakemake.input.environment,
        data=list(snakemake.input.get("data", [])),
    )
