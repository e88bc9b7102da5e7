from itertools import product
from pathlib import Path

from locallm.logs import log_to
from locallm.report.run_files import Run
from locallm.report.write import write_report

with log_to(snakemake.log[0]):
    variants, stages = snakemake.params.variants, snakemake.params.stages
    trained = list(product(variants, snakemake.params.trained))
    run = Run(
        config=snakemake.params.config,
        raw_files=list(snakemake.input.raw),
        ingest_report=snakemake.input.ingest_report,
        filter_report=snakemake.input.filter_report,
        split_report=snakemake.input.split_report,
        cluster_summary=snakemake.input.cluster_summary,
        duplicates=snakemake.input.duplicates,
        splits=dict(zip(["train", "validation", "test"], snakemake.input.splits, strict=True)),
        split_rejects=snakemake.input.split_rejects,
        lengths=dict(snakemake.params.lengths),
        models=dict(zip(trained, snakemake.input.models, strict=True)),
        predictions=dict(zip(product(variants, stages), snakemake.input.predictions, strict=True)),
        metrics=snakemake.input.metrics[0] if snakemake.input.metrics else None,
        decision=snakemake.input.decision[0] if snakemake.input.decision else None,
        # The run's results folder: REFORMS.md is in its report/ folder.
        results=str(Path(snakemake.output.reforms).parents[1]),
        benchmarks=snakemake.params.benchmarks,
        annotation=dict(zip(snakemake.params.annotation, snakemake.input.annotation, strict=True)),
    )
    write_report(
        run,
        # The repository this script belongs to: its git commit goes into environment.json.
        repo=Path(snakemake.scriptdir).resolve().parents[1],
        reforms=snakemake.output.reforms,
        data_card=snakemake.output.data_card,
        environment_json=snakemake.output.environment,
        checksums_tsv=snakemake.output.checksums,
        config_yaml=snakemake.output.config,
        model_cards=dict(zip(trained, snakemake.output.model_cards, strict=True)),
    )
