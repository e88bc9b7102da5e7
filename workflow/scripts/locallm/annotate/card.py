"""The annotation card (annotate/card.md of the run's results): which model labelled the corpus
and why, how well it did on the test split, the label shares and what they assume, how to load
the tables."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from locallm.evaluation.decision import STAGE_NAMES
from locallm.tables import markdown_table, write_text

HEADLINE = ["accuracy", "macro_f1", "cohen_kappa", "krippendorff_alpha", "ece"]

# Formatted with the run's annotate folder (results/NAME/annotate).
LOADING = """```python
import pandas as pd
passages = pd.read_parquet("{folder}/passages.parquet")
documents = pd.read_parquet("{folder}/documents.parquet")
estimates = pd.read_csv("{folder}/estimates.tsv", sep="\\t")
```

```r
library(arrow)
passages <- read_parquet("{folder}/passages.parquet")
documents <- read_parquet("{folder}/documents.parquet")
estimates <- read.delim("{folder}/estimates.tsv")
```

DuckDB: `SELECT * FROM '{folder}/passages.parquet'`. With `annotate.csv: true`, CSV copies
(`passages.csv`, `documents.csv`) sit beside them for Stata and SPSS."""


def _interval(row: pd.Series) -> str:
    if pd.isna(row.get("ci_low")):
        return f"{row['value']:.3f}"
    return f"{row['value']:.3f} ({row['ci_low']:.3f} to {row['ci_high']:.3f})"


def why_section(choice: dict[str, Any]) -> list[str]:
    stage = choice["stage"]
    lines = [
        f"- Variant **{choice['variant']}**, stage **{stage}** "
        f"({STAGE_NAMES.get(stage, stage)}); how it was chosen: {choice['chosen_by']}.",
    ]
    if choice["good_enough"] is True:
        lines.append(
            f"- It clears the pre-registered bar: {choice['metric']} 95% CI lower bound "
            f"{choice['ci_low']:.3f} >= {choice['threshold']:g}."
        )
    elif choice["good_enough"] is False:
        lines.append(
            f"- **It missed the pre-registered bar** ({choice['metric']} 95% CI lower bound "
            f"{choice['ci_low']:.3f} < {choice['threshold']:g}); it was named by hand in "
            "`annotate.use`, and every annotation output says so (`stage_good_enough` false)."
        )
    else:
        lines.append("- No pre-registered bar was assessed for it (no threshold, or no metrics).")
    return lines


def metrics_section(metrics: pd.DataFrame | None, choice: dict, labels: Sequence[str]) -> list[str]:
    if metrics is None:
        return ["No test metrics: the run did not evaluate on a labelled test split."]
    mine = metrics[
        (metrics["variant"] == choice["variant"]) & (metrics["stage"] == choice["stage"])
    ]
    value = mine.set_index("metric")
    lines = ["| metric | value (95% CI, groups resampled) |", "|---|---|"]
    lines += [f"| {m} | {_interval(value.loc[m])} |" for m in HEADLINE if m in value.index]
    lines += ["", "Which errors to expect, per label (test split):", ""]
    lines += ["| label | precision | recall | F1 |", "|---|---|---|---|"]
    for label in labels:
        cells = [
            _interval(value.loc[f"{name}[{label}]"]) if f"{name}[{label}]" in value.index else "–"
            for name in ("precision", "recall", "f1")
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Low precision for a label means its share is over-counted by the model's labels; low "
        "recall, under-counted. Calibration: `ece` above (expected calibration error of the top "
        "label's probability) and eval/calibration.png.",
    ]
    return lines


def estimates_section(estimates: pd.DataFrame) -> list[str]:
    overall = estimates[estimates["by"] == "all"]
    lines = [
        "| label | model's labels | gold test labels | prediction-powered |",
        "|---|---|---|---|",
    ]
    for label, rows in overall.groupby("label", sort=False):
        cells = []
        for method in ("model", "gold", "prediction_powered"):
            row = rows[rows["method"] == method].iloc[0]
            cells.append(
                "–"
                if pd.isna(row["estimate"])
                else f"{row['estimate']:.3f} ({row['ci_low']:.3f} to {row['ci_high']:.3f})"
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    first = overall.iloc[0]
    lines += [
        "",
        f"Population: {first['population']}; {int(first['n_passages'])} passages in "
        f"{int(first['n_groups'])} groups; gold sample: {int(first['n_gold'])} test passages in "
        f"{int(first['n_gold_groups'])} groups. By metadata: annotate/estimates.tsv and "
        "estimates.png.",
        "",
        "**What these assume.** The gold-only and prediction-powered estimates assume the gold "
        "sample (the test split, drawn by group with the seed) is a random sample of the annotated "
        "population; their 95% intervals resample whole groups of the gold sample and of the "
        "population. The model's labels alone carry no correction: where the model errs they are "
        "biased, and their interval covers only sampling noise. Passages of the train split were "
        "seen in training, so the model may err less on them than on the test split, and the "
        "correction may be too large for them.",
    ]
    if not overall["gold_sample_of_population"].all():
        lines += [
            "",
            "**Warning:** the population includes the user's own files. The test split is not "
            "a sample of them; the corrected estimates hold only if those files come from the same "
            "population as the corpus.",
        ]
    return lines


def annotation_card(
    choice: dict[str, Any],
    metrics: pd.DataFrame | None,
    estimates: pd.DataFrame,
    accounting: pd.DataFrame,
    labels: Sequence[str],
    folder: str = "results/NAME/annotate",
) -> str:
    first = estimates.iloc[0]
    lines = ["# Annotation card", "", "## Which model, and why", ""]
    lines += why_section(choice)
    lines += [
        f"- Base `{first['model']}`, adapter `{first['adapter']}`, engine {first['engine']}, "
        f"precision {first['gen_precision']}, code version `{first['code_version']}`.",
        "",
        "## How well it labels (test split)",
        "",
    ]
    lines += metrics_section(metrics, choice, labels)
    lines += ["", "## Label shares", ""]
    lines += estimates_section(estimates)
    lines += ["", "## Every record accounted for", "", markdown_table(accounting), ""]
    lines += ["## Loading the tables", "", LOADING.format(folder=folder), ""]
    return "\n".join(lines)


def write_card(
    *,
    choice: str | Path,
    metrics: str | Path | None,
    estimates: str | Path,
    accounting: str | Path,
    labels: Sequence[str],
    output: str | Path,
) -> None:
    """The annotation_card job."""
    table = pd.read_csv(metrics, sep="\t") if metrics else None
    text = annotation_card(
        json.loads(Path(choice).read_text()),
        table,
        pd.read_csv(estimates, sep="\t"),
        pd.read_csv(accounting, sep="\t"),
        labels,
        folder=Path(output).parent.as_posix(),
    )
    write_text(text, output)
