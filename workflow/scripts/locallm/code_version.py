"""The git commit of the code that made an output (recorded by annotation rows and the report)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

# The folder of an unpacked replication archive (locallm.report.archive) that records its commit.
REPLICATION = "replication"


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


def code_version(repo: str | os.PathLike) -> str:
    """`<commit>`, `<commit>+changes` when tracked files differ from it, or `unknown` (no git)."""
    state = git_state(repo)
    if state["commit"] is None:
        return "unknown"
    return state["commit"] + ("+changes" if state["dirty"] else "")
