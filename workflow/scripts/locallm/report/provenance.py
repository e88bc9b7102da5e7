"""What a run was made from and where: SHA-256 checksums of files and the environment."""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

import pandas as pd

from locallm.code_version import git_state
from locallm.hashing import sha256
from locallm.machine import cpu_flags, cpu_model, memory_gb

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
