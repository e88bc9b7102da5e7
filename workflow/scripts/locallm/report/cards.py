"""data_card.md (the corpus from raw files to splits) and a model card per trained stage (a Hugging
Face Hub metadata header, the training settings, test metrics with CIs, intended use and limits).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from locallm.model.facts import model_card_licence
from locallm.report.run_files import (
    RUN_INFO,
    Run,
    cite,
    filter_totals,
    label_balance,
    label_origin,
    leakage_check,
    markdown_table,
    metric_table,
    record_flow,
    sample_size,
    sources,
    warnings,
)


def data_card_markdown(run: Run) -> str:
    """data_card.md: the corpus from raw files to splits."""
    ingest = run.table(run.ingest_report)
    filters = filter_totals(run)
    reasons = filters[~filters.reason.isin(["corpus", "kept"])]
    duplicates = run.table(run.duplicates)
    clusters = run.table(run.cluster_summary)
    topic_columns = [c for c in ("cluster", "size", "share", "top_terms") if c in clusters]
    topics = clusters[topic_columns].copy()
    if "share" in topics:
        topics["share"] = topics["share"].map(lambda v: f"{float(v):.3f}")
    kinds = ", ".join(f"{k}: {v}" for k, v in duplicates.groupby("kind").size().items())
    dup_summary = (
        f"{len(duplicates)} documents duplicate {duplicates['duplicate_of'].nunique()} others"
        + (f" ({kinds})" if kinds else "")
        + "; the filters remove them (rows `dedup.exact` and `dedup.near` above; a copy that an "
        "earlier rule removed is counted under that rule)."
    )
    sections = [
        "# Data card",
        "",
        "The corpus of this run from raw files to splits. Every number is read from the file "
        "named under it.",
        "",
        "## Sources",
        "",
        sources(run),
        "",
        "## Ingest",
        "",
        markdown_table(ingest),
        "",
        cite(run.ingest_report),
        "",
        "## Flow of records",
        "",
        markdown_table(record_flow(run)),
        "",
        "## Filters: reasons for removal",
        "",
        markdown_table(reasons),
        "",
        cite(run.filter_report),
        "",
        "## Duplicates",
        "",
        dup_summary + " " + cite(run.duplicates),
        "",
        "## Topics",
        "",
        markdown_table(topics),
        "",
        cite(run.cluster_summary),
        "",
        "## Splits and label balance",
        "",
        label_origin(run.config),
        "",
        sample_size(run, with_warnings=False),
        "",
        markdown_table(label_balance(run)),
        "",
        "## Leakage check",
        "",
        leakage_check(run),
        "",
        "## Data-sufficiency warnings",
        "",
        "\n".join(f"- {w}" for w in warnings(run)) or "None.",
        "",
        cite(run.split_report),
        "",
    ]
    return "\n".join(sections)


def _licence(info: dict[str, Any]) -> str:
    if info.get("base") == "builtin:tiny":
        return "other"
    base_dir = info.get("base_path")
    found = model_card_licence(Path(base_dir)) if base_dir and Path(base_dir).is_dir() else None
    return found or "other"


def model_card_markdown(run: Run, variant: str, stage: str) -> str:
    """A trained stage's README.md: Hub metadata header, settings, test metrics, use, limits."""
    info = run.run_info(variant, stage)
    task = run.config["task"]
    library = "transformers" if info.get("method") == "full" else "peft"
    metrics = pd.DataFrame()
    if run.metrics is not None:
        all_metrics = run.table(run.metrics)
        metrics = all_metrics[(all_metrics.variant == variant) & (all_metrics.stage == stage)]
    dataset = {"name": f"{run.config['corpus']['source']} (test split)", "type": "local"}
    header = {
        "base_model": info.get("base"),
        "library_name": library,
        "license": _licence(info),
        "datasets": [f"local: {', '.join(run.raw_files)}"],
        "language": ["en"] if run.config["corpus"]["source"] == "sotu" else [],
        "tags": ["locallm", stage, str(info.get("method")), "trl"],
        "pipeline_tag": "text-generation",
    }
    if len(metrics):
        header["model-index"] = [
            {
                "name": f"{variant}-{stage}",
                "results": [
                    {
                        "task": {"type": "text-classification", "name": task["label_column"]},
                        "dataset": dataset,
                        "metrics": [
                            {"type": row.metric, "value": round(float(row.value), 4)}
                            for row in metrics.itertuples(index=False)
                            # Perplexity is measured on the validation split, not this dataset.
                            if row.metric != "perplexity"
                        ],
                    }
                ],
            }
        ]
    if not header["language"]:
        del header["language"]
    settings = info.get("settings", {})
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False, allow_unicode=True).strip(),
        "---",
        "",
        f"# {variant} / {stage}",
        "",
        f"{stage.upper()} stage of variant `{variant}`: method `{info.get('method')}` on base "
        f"`{info.get('base')}` (fingerprint `{info.get('base_fingerprint')}`), trained by locallm "
        f"for {info.get('steps')} steps (seed {info.get('seed')}).",
        "",
        "## Task",
        "",
        f"Answers the prompt below with one of: {', '.join(task['labels'])} "
        f"(label column `{task['label_column']}`).",
        "",
        "```text",
        task["prompt"],
        "```",
        "",
        "## Metrics",
        "",
        "On the test split (perplexity: on the validation split), with 95% intervals from a "
        "bootstrap over whole groups.",
        "",
        markdown_table(metric_table(run).loc[metrics.index]) if len(metrics) else "Not evaluated.",
        "",
        "## Training settings",
        "",
        markdown_table(
            pd.DataFrame(
                [{"setting": k, "value": json.dumps(settings[k])} for k in sorted(settings)]
            )
        ),
        "",
        f"Measured: {info.get('wall_time_s')} s wall time, {info.get('tokens_per_s')} tokens/s, "
        f"final loss {info.get('final_loss')}, device {info.get('device')}.",
        "",
        "## Intended use and limits",
        "",
        "For research on texts like this run's corpus, as one measured instrument among others: "
        "report its test metrics with their intervals, and validate it on your own labelled "
        "sample before using it on other texts, periods or languages. Not for decisions about "
        "individuals. Its errors follow the training data (see the data card); a stage whose "
        "metrics equal the majority baseline has learned nothing usable.",
        "",
        "Written by the `report` rule from "
        + ", ".join(
            f"`{p}`" for p in [f"{run.models[variant, stage]}/{RUN_INFO}", run.metrics] if p
        )
        + "; the data card and REFORMS checklist are in `results/report/`.",
        "",
    ]
    return "\n".join(lines)
