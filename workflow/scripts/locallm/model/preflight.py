"""The pre-flight table: check each variant's base before the GPU jobs (fetching is in
`locallm.model.fetching`).

`preflight_table` reads each base's files (never its weights) and says, per variant, how large it
is, how long a context it takes, whether it is a base or an instruct model, its licence, and
whether the memory estimate fits the configured GPU.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from locallm.config import variant_settings
from locallm.logs import get_logger, warn
from locallm.model.facts import TINY, has_chat_template, model_card_licence
from locallm.model.fetching import cached_base_dir
from locallm.model.gguf_files import gguf_facts
from locallm.model.memory import gpu_resources
from locallm.model.shape import ModelShape, shape_from_config, shape_from_tiny
from locallm.model.sources import BUILTIN_WHEELS, gguf_source, is_gguf_base
from locallm.tables import write_tsv
from locallm.task.formats import format_kind

log = get_logger("preflight")

# The column of the tokenize rule's length report (tokenization.length_report) with the longest
# example of each split.
LONGEST_COLUMN = "max"
COLUMNS = [
    "variant",
    "base",
    "method",
    "params_M",
    "context",
    "max_length",
    "longest_example",
    "attention",
    "kind",
    "format",
    "licence",
    "gpus",
    "gpu_mem_GB",
    "fits",
    "note",
]


def model_facts(model_dir: Path) -> dict[str, Any]:
    """Shape, context length, chat template and licence, read from a model folder's small files."""
    from locallm.model.facts import context_length
    from locallm.model.shape import read_model_config, shape_from_meta

    config = read_model_config(model_dir)
    try:
        shape = shape_from_config(config)
    except ValueError:
        # No shape rule for this architecture: count it on the meta device instead.
        shape = shape_from_meta(model_dir)
    return {
        "shape": shape,
        "params": shape.params,
        "context_length": context_length(config),
        "chat_template": has_chat_template(model_dir),
        "licence": model_card_licence(model_dir),
    }


def base_facts(settings: dict[str, Any], tiny: dict[str, Any]) -> dict[str, Any] | None:
    """model_facts of a variant's base (a GGUF's from its metadata); None until it is on disk."""
    base = settings["base"]
    if base == TINY:
        shape = shape_from_tiny(tiny)
        return {
            "shape": shape,
            "params": shape.params,
            "context_length": shape.context_length,
            "chat_template": True,
            "licence": "built here",
        }
    if is_gguf_base(base):
        source = Path(gguf_source(base))
        return gguf_facts(source) if source.exists() else None
    model_dir = cached_base_dir(settings)
    return model_facts(model_dir) if model_dir is not None else None


def longest_tokenized(report: str | os.PathLike) -> int | None:
    """The longest tokenized example in a tokenize length report; None until the report exists."""
    if not Path(report).exists():
        return None
    lengths = pd.read_csv(report, sep="\t")
    if LONGEST_COLUMN not in lengths:
        raise ValueError(
            f"{report}: no column {LONGEST_COLUMN!r} (it has: {', '.join(lengths.columns)}); "
            "is it a length report of the tokenize rule? Re-run tokenize"
        )
    return int(lengths[LONGEST_COLUMN].max())


def variant_row(
    config: dict[str, Any], variant: str, lengths: str | os.PathLike | None = None
) -> dict[str, Any]:
    """One pre-flight row: what the variant's base is, and whether its training fits the GPU.

    `lengths`: the variant's tokenize length report, for its longest example once tokenized.
    """
    settings = variant_settings(config, variant)
    settings.setdefault("cache_dir", config["model"]["cache_dir"])
    hpc = config["hpc"]
    row = {"variant": variant, "base": settings["base"], "method": settings["method"]}
    facts = base_facts(settings, config["model"]["tiny"])
    if facts is None:
        if settings["base"] in BUILTIN_WHEELS:
            # The catalogue knows a built-in's kind and licence before its files are here.
            spec = BUILTIN_WHEELS[settings["base"]]
            instruct = spec.kind == "instruct"
            row.update(kind=spec.kind, format=format_kind(settings, instruct), licence=spec.licence)
        rule = "fetch_builtin" if settings["base"] in BUILTIN_WHEELS else "fetch_base"
        return {**row, "note": f"not fetched yet: run the {rule} rule on the login node"}
    shape: ModelShape | None = facts["shape"]
    row.update(
        {
            "params_M": round(facts["params"] / 1e6, 1),
            "context": facts["context_length"],
            "max_length": settings["max_length"],
            # Known once tokenize has run for the variant.
            "longest_example": (lengths and longest_tokenized(lengths)) or "-",
            "attention": shape.attention if shape is not None else "-",
            "kind": "instruct" if facts["chat_template"] else "base",
            # What every stage (zero-shot, few-shot, SFT, DPO) renders its prompts as.
            "format": format_kind(settings, facts["chat_template"]),
            "licence": facts["licence"] or "not stated",
        }
    )
    notes = []
    if facts["context_length"] and settings["max_length"] > facts["context_length"]:
        notes.append(f"max_length {settings['max_length']} > context {facts['context_length']}")
    if shape is not None:
        resources = gpu_resources(settings, shape, hpc)
        row["gpus"] = resources["gpu"]
        row["gpu_mem_GB"] = round(resources["gpu_mem_mb"] / 1000, 1)
        row["fits"] = resources["gpu_mem_mb"] <= hpc["gpu_memory_gb"] * 1000
        if not row["fits"]:
            notes.append(f"estimate exceeds hpc.gpu_memory_gb {hpc['gpu_memory_gb']}")
        if resources["gpu"] > hpc["gpus_per_node"]:
            row["fits"] = False
            notes.append(f"num_processes {resources['gpu']} > hpc.gpus_per_node")
    row["note"] = "; ".join(notes)
    return row


def preflight_table(
    config: dict[str, Any], lengths: Mapping[str, str | os.PathLike] | None = None
) -> pd.DataFrame:
    """The pre-flight table: one row per variant (a base that cannot be read says why in `note`).

    `lengths`: variant -> its tokenize length report (the longest example shows once it exists).
    """
    rows = []
    for variant in config["variants"]:
        try:
            rows.append(variant_row(config, variant, (lengths or {}).get(variant)))
        except (OSError, ValueError, KeyError) as error:
            # Printed at DAG time: a bad base must not stop `snakemake -n`; its rules say more.
            base = variant_settings(config, variant)["base"]
            rows.append({"variant": variant, "base": base, "note": str(error)})
    table = pd.DataFrame(rows)
    # One column order whichever variant's row came first (an unfetched base has fewer facts).
    return table[[c for c in COLUMNS if c in table] + [c for c in table if c not in COLUMNS]]


def check_fit(table: pd.DataFrame, hpc: dict[str, Any]) -> None:
    """Warn (or raise, with hpc.fit_error) for each variant whose estimate does not fit."""
    if "fits" not in table:
        return
    misfits = table[table["fits"] == False]  # noqa: E712 - NaN (unknown) is not a misfit
    for _, row in misfits.iterrows():
        message = f"variant {row['variant']} ({row['base']}, {row['method']}): {row['note']}"
        if hpc["fit_error"]:
            raise ValueError(f"pre-flight: {message} (hpc.fit_error is on)")
        warn(log, f"pre-flight: {message}")


def local_gpu_count() -> int:
    """NVIDIA GPUs this machine has (their /dev/nvidiaN devices), found without importing torch."""
    return len(glob.glob("/dev/nvidia[0-9]*"))


def format_preflight(table: pd.DataFrame, gpus_here: int | None = None) -> str:
    """The table as aligned text, for the terminal.

    `gpus_here`: the GPUs of the machine the jobs run on when they run locally (None on a
    cluster). With none, the gpus / gpu_mem_GB / fits columns describe a cluster's GPUs, not this
    run, and the text says so.
    """
    text = "pre-flight (read from the models' files, no weights loaded):\n" + table.to_string(
        index=False, na_rep="-"
    )
    if "format" in table:
        text += (
            "\nformat: how every stage of the variant (zero-shot, few-shot, SFT, DPO) renders "
            "prompts: `chat` through the chat template, `completion` as plain text in "
            "training.completion_format (a base model)"
        )
    if gpus_here == 0 and "gpus" in table:
        text += (
            "\nThis machine has no GPU: the jobs run on the CPU. gpus, gpu_mem_GB and fits "
            "estimate a cluster run on GPUs of hpc.gpu_memory_gb, not this run."
        )
    return text


def write_preflight(
    config: dict[str, Any],
    output: str | os.PathLike,
    lengths: Mapping[str, str | os.PathLike] | None = None,
) -> pd.DataFrame:
    """Write the pre-flight table as TSV (rule preflight) and check that each variant fits."""
    table = preflight_table(config, lengths)
    write_tsv(table, output)
    log.info("%s", format_preflight(table))
    check_fit(table, config["hpc"])
    return table


def job_resources(config: dict[str, Any], variant: str, stage: str = "train") -> dict[str, int]:
    """Snakemake resources of a variant's GPU job (`gpu`, `mem_mb`, `gpu_mem_mb`), for model.smk.

    Before a Hub base is fetched its shape is unknown: the job then asks one GPU per process and
    training.mem_mb, and the estimate follows on the next run (after fetch_base).
    """
    settings = variant_settings(config, variant)
    settings.setdefault("cache_dir", config["model"]["cache_dir"])
    facts = base_facts(settings, config["model"]["tiny"])
    shape = facts["shape"] if facts is not None else None
    if shape is None:
        gpus = settings["num_processes"] if stage == "train" else 1
        return {"gpu": gpus, "mem_mb": settings["mem_mb"] * gpus}
    return gpu_resources(settings, shape, config["hpc"], stage=stage)
