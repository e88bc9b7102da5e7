"""The run's citable report (rule `report`): REFORMS.md, data_card.md, a model card per trained
stage, and the provenance beside them (environment.json, checksums.tsv, the resolved config).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from locallm.report.cards import data_card_markdown, model_card_markdown
from locallm.report.provenance import checksums, environment
from locallm.report.reforms import reforms_markdown
from locallm.report.run_files import Run
from locallm.tables import write_json, write_text, write_tsv


def write_report(
    run: Run,
    repo: str | os.PathLike,
    reforms: str,
    data_card: str,
    environment_json: str,
    checksums_tsv: str,
    config_yaml: str,
    model_cards: dict[tuple[str, str], str],
) -> None:
    """Write every file of results/report/, and each trained stage's README.md (its model card)."""
    run.environment = environment(repo)
    write_json(run.environment, environment_json)
    write_text(yaml.safe_dump(run.config, sort_keys=True, allow_unicode=True), config_yaml)
    for (variant, stage), path in model_cards.items():
        card = model_card_markdown(run, variant, stage)
        write_text(card, path)
        # Replaces PEFT's empty template, so the card travels with the adapter to the Hub.
        write_text(card, Path(run.models[variant, stage]) / "README.md")
    write_text(reforms_markdown(run), reforms)
    write_text(data_card_markdown(run), data_card)
    cited = {
        "input": run.raw_files,
        "config": [config_yaml],
        "split": [*run.splits.values(), run.split_rejects],
        "model": [
            f for folder in run.models.values() for f in sorted(Path(folder).glob("*.safetensors"))
        ],
        "predictions": list(run.predictions.values()),
        "metrics": [run.metrics] if run.metrics else [],
        "annotation": list(run.annotation.values()),
        "report": [run.ingest_report, run.filter_report, run.split_report, reforms, data_card],
    }
    write_tsv(checksums(cited), checksums_tsv)
