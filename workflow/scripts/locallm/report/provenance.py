"""What a run was made from and where: SHA-256 checksums of files and the environment."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

import pandas as pd

from locallm.hashing import sha256
from locallm.machine import cpu_flags, cpu_model, memory_gb
from locallm.report.archive import REPLICATION

CHECKSUM_COLUMNS = ["role", "path", "bytes", "sha256"]


def files_under(path: str | os.PathLike) -> list[Path]:
    """`path` itself, or every file below a folder (sorted; Snakemake's timestamp file left out)."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name != ".snakemake_timestamp")


def checksums(files_by_role: dict[str, list[str | os.PathLike]]) -> pd.DataFrame:
    """One row per file (folders expanded): its role, path, size and SHA-256, in the given order."""
    rows = []
    for role, paths in files_by_role.items():
        for given in paths:
            for path in files_under(given):
                if not path.exists():
                    raise FileNotFoundError(f"checksums: {path} ({role}) does not exist")
                rows.append(
                    {
                        "role": role,
                        "path": path.as_posix(),
                        "bytes": path.stat().st_size,
                        "sha256": sha256(path),
                    }
                )
    return pd.DataFrame(rows, columns=CHECKSUM_COLUMNS)


def _git(repo: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout


def git_state(repo: str | os.PathLike) -> dict[str, Any]:
    """The commit checked out in `repo` and whether tracked files differ from it (None: no git).

    An unpacked archive has no git: its replication/manifest.json names the commit it was made
    from, and the state says it came from there.
    """
    repo = Path(repo)
    commit = _git(repo, "rev-parse", "HEAD")
    if commit is None:
        manifest = repo / REPLICATION / "manifest.json"
        if manifest.is_file():
            made_from = json.loads(manifest.read_text())
            return {
                "commit": made_from.get("commit"),
                "dirty": made_from.get("dirty"),
                "changed_files": [],
                "source": f"{REPLICATION}/manifest.json (an unpacked archive, not a git checkout)",
            }
        return {"commit": None, "dirty": None, "changed_files": []}
    changed = _git(repo, "status", "--porcelain", "--untracked-files=no") or ""
    files = [line[3:] for line in changed.splitlines() if line.strip()]
    return {"commit": commit.strip(), "dirty": bool(files), "changed_files": files}


def installed_packages() -> dict[str, str]:
    """Every installed distribution and its version (what `pip freeze` lists), sorted by name."""
    found = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name:
            found[name.lower()] = dist.version
    return dict(sorted(found.items()))


def _accelerator() -> dict[str, Any]:
    """torch's version, its CUDA build, and the GPUs it sees (none on a CPU machine)."""
    try:
        import torch
    except ImportError:
        return {"torch": None, "cuda": None, "gpus": []}
    gpus = []
    if torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "torch": torch.__version__,
        # The kernel family torch picked for this CPU (e.g. AVX2, AVX512).
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "gpus": gpus,
    }


def environment(repo: str | os.PathLike) -> dict[str, Any]:
    """Python, packages, torch/CUDA/GPUs, CPU, OS and the code's git state, for environment.json."""
    return {
        "python": sys.version.split()[0],
        **_accelerator(),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "memory_gb": memory_gb(),
        "os": platform.platform(),
        "git": git_state(repo),
        "packages": installed_packages(),
    }
