"""Is the `locallm` this Python imports the code of the workflow being run?

Snakemake appends a job script's folder to `sys.path`, after site-packages, so an editable install
of another clone (one venv shared by two checkouts) would silently run that clone's library in
this workflow's jobs. Comparing the files, not the paths, lets a copy of the same code pass (the
tests run copies of the workflow in temporary folders).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import locallm


def package_digest(package_dir: Path) -> str:
    """SHA-256 over the names and bytes of the package's .py files."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(str(path.relative_to(package_dir)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def installed_mismatch(workflow_dir: str | Path) -> str | None:
    """A message when the imported locallm differs from `workflow_dir`'s own; None when it is it."""
    own = Path(workflow_dir) / "workflow" / "scripts" / "locallm"
    imported = Path(locallm.__file__).resolve().parent
    if imported == own.resolve() or package_digest(imported) == package_digest(own):
        return None
    return (
        f"the locallm package this Python imports ({imported}) is not this workflow's code "
        f"({own}); jobs would run the other one. Install this checkout into the environment: "
        f"pip install -e {Path(workflow_dir).resolve()}"
    )
