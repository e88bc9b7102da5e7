"""The git commit of the code that made an output (recorded by annotation rows and the report)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any


def _git(repo: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout


def git_state(repo: str | os.PathLike) -> dict[str, Any]:
    """The commit checked out in `repo` and whether tracked files differ from it (None: no git)."""
    repo = Path(repo)
    commit = _git(repo, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "changed_files": []}
    changed = _git(repo, "status", "--porcelain", "--untracked-files=no") or ""
    files = [line[3:] for line in changed.splitlines() if line.strip()]
    return {"commit": commit.strip(), "dirty": bool(files), "changed_files": files}


def code_version(repo: str | os.PathLike) -> str:
    """`<commit>`, `<commit>+changes` when tracked files differ from it, or `unknown` (no git)."""
    state = git_state(repo)
    if state["commit"] is None:
        return "unknown"
    return state["commit"] + ("+changes" if state["dirty"] else "")
