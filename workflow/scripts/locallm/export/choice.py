"""Which variant x stage to export, and whether its architecture can be: no torch (planning).

`export.use: decision` takes the cheapest stage that results/eval/decision.md finds good enough
(locallm.evaluation.decision), and among its variants the one with the best value of the metric.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from locallm.model.facts import TINY
from locallm.model.sources import BUILTIN_WHEELS, gguf_source, is_gguf_base

# The builtin GGUF bases' architectures (their files are fetched later; planning cannot read them).
BUILTIN_ARCHITECTURES = {"builtin:smollm2-135m-instruct": "llama"}
# What locallm.export.gguf_file writes (transformers' model_type and llama.cpp's name agree here).
EXPORTABLE = ("llama",)


def chosen_by_decision(metrics_tsv: str | os.PathLike) -> tuple[str, str] | None:
    """(variant, stage) the decision names, from metrics.tsv's good_enough column; None when no
    variant x stage is good enough or no threshold was set."""
    import pandas as pd

    from locallm.annotate.choice import best_model
    from locallm.evaluation.decision import cheapest_good_enough

    metrics = pd.read_csv(metrics_tsv, sep="\t")
    if "good_enough" in metrics:
        metrics["good_enough"] = metrics["good_enough"].astype("boolean")
    best = cheapest_good_enough(metrics)
    if best.empty:
        return None
    # The tie-break annotation uses (locallm.annotate.choice), so that the exported file is the
    # model that labelled the corpus.
    row = best_model(best)
    return str(row["variant"]), str(row["stage"])


def export_choice(
    settings: dict[str, Any], metrics_tsv: str | os.PathLike | None
) -> tuple[str, str] | None:
    """(variant, stage) that export.use names, or that the decision picks."""
    use = settings["use"]
    if isinstance(use, dict):
        return use["variant"], use["stage"]
    if metrics_tsv is None or not Path(metrics_tsv).exists():
        return None
    return chosen_by_decision(metrics_tsv)


def base_architecture(base: str, base_path: str) -> str | None:
    """The base's architecture as far as planning can tell without loading it (None: not known
    yet, e.g. a Hub model not fetched; the export job checks it again)."""
    if base == TINY:
        return "llama"
    if base in BUILTIN_WHEELS:
        return BUILTIN_ARCHITECTURES.get(base)
    if is_gguf_base(base):
        source = gguf_source(base)
        if not Path(source).exists():
            return None
        from locallm.model.gguf_files import gguf_facts

        return gguf_facts(source)["architecture"]
    config = Path(base_path) / "config.json"
    if config.exists():
        return json.loads(config.read_text()).get("model_type")
    return None


def architecture_problem(variant: str, base: str, base_path: str) -> str | None:
    """Why the variant cannot be exported, or None."""
    architecture = base_architecture(base, base_path)
    if architecture is None or architecture in EXPORTABLE:
        return None
    from locallm.export.gguf_file import unsupported_message

    return unsupported_message(architecture, f"export of variant {variant} (base {base})")


def write_choice(
    settings: dict[str, Any],
    metrics_tsv: str | os.PathLike,
    output: str | os.PathLike,
    folder_pattern: str = "results/NAME/export/{variant}/{stage}",
) -> None:
    """export/chosen.json: the exported variant x stage and its folder (`folder_pattern`, from
    locallm.paths), or why none."""
    from locallm.tables import write_json

    choice = export_choice(settings, metrics_tsv)
    if choice is None:
        record = {
            "variant": None,
            "stage": None,
            "folder": None,
            "reason": "no variant x stage is good enough (eval/decision.md); set "
            "export.use: {variant: ..., stage: ...} to export one anyway",
        }
    else:
        variant, stage = choice
        folder = folder_pattern.format(variant=variant, stage=stage)
        record = {"variant": variant, "stage": stage, "folder": folder}
    write_json(record, output)
