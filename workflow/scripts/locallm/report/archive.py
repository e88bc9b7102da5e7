"""The replication archive: one .tar.gz with the code, the resolved config, the package lock, the
checksums and (optionally) the input data, that reruns the workflow elsewhere without conda.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from locallm.code_version import REPLICATION
from locallm.tables import atomic_path

log = logging.getLogger(__name__)

# What a checkout holds besides results, when it is not a git repository.
WORKFLOW_PATHS = [
    "Snakefile",
    "workflow",
    "config",
    "envs",
    "profiles",
    "docs",
    "README.md",
    "requirements.txt",
    "requirements-dev.txt",
    "pyproject.toml",
]
# The package this repository installs (pyproject.toml); not on any index.
PROJECT = "locallm"
# torch's CPU wheels (the `+cpu` versions a CPU run locks) are only on PyTorch's own index.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
RERUN = """# Rerunning this archive

Made from git commit {commit} ({tree}).

    tar -xzf {archive} && cd {root}
    python3.11 -m venv .venv && . .venv/bin/activate
    pip install --extra-index-url {torch_index} -r {replication}/requirements.lock -e .
    snakemake --cores all --configfile={replication}/config.yaml
    sha256sum -c <(awk -F'\\t' 'NR>1 {{print $4"  "$2}}' {replication}/checksums.tsv)

The extra index serves the CPU build of torch pinned in the lock (`torch==…+cpu`), which PyPI does
not; `pip install -r requirements.txt` instead installs the workflow's own ranges. `--configfile=`
is one token: written apart, it would take the targets after it for more config files.
`config.yaml` is the run's resolved config (every default filled in), `requirements.lock` every
package installed when the report was written, `environment.json` the machine (CPU, GPU, OS),
`checksums.tsv` the SHA-256 of the inputs and of every table the paper cites. {data}
On a CPU the rerun gives byte-identical tables; on a GPU see docs/reproduce.md.
"""


def code_files(repo: str | os.PathLike) -> list[Path]:
    """The workflow's files, relative to `repo`: git's tracked files, or WORKFLOW_PATHS' files."""
    repo = Path(repo)
    try:
        listed = subprocess.run(
            ["git", "-C", str(repo), "ls-files", "-z"], capture_output=True, check=True
        ).stdout.decode()
        files = [Path(name) for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for name in WORKFLOW_PATHS:
            path = repo / name
            if path.is_dir():
                files += [p.relative_to(repo) for p in path.rglob("*") if p.is_file()]
            elif path.is_file():
                files.append(Path(name))
    # Tracked files deleted in the working tree are not part of what ran.
    kept = [f for f in files if (repo / f).is_file() and "__pycache__" not in f.parts]
    return sorted(kept)


def requirements_lock(packages: dict[str, str]) -> str:
    """`name==version` lines (pip's requirements format) from environment.json's package list,
    without locallm itself: the rerun installs it from the archive's code (`-e .`), not an index."""
    return "".join(
        f"{name}=={version}\n" for name, version in sorted(packages.items()) if name != PROJECT
    )


def data_paths(files: list[str]) -> list[Path]:
    """The input files, which must lie under the working directory to be unpacked in place."""
    paths = []
    for name in files:
        path = Path(name)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(
                f"archive: input file {name!r} is outside the working directory; the archive "
                f"stores inputs at their relative paths, so give corpus.paths relative to it"
            )
        paths.append(path)
    return paths


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    """Add one file with fixed owner and time, so the same inputs give the same archive bytes."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def write_archive(
    output: str | os.PathLike,
    repo: str | os.PathLike,
    config_yaml: str,
    checksums_tsv: str,
    environment_json: str,
    data: list[str],
) -> dict[str, Any]:
    """Write the .tar.gz; return what went in (also written as replication/manifest.json)."""
    repo, output = Path(repo), Path(output)
    environment = json.loads(Path(environment_json).read_text())
    git = environment["git"]
    commit = git["commit"] or "no-git"
    root = f"locallm-{commit[:12]}"
    tree = {True: "with uncommitted changes, archived as they ran", False: "clean"}.get(
        git["dirty"], "not a git checkout: the workflow files as they ran"
    )
    code = code_files(repo)
    inputs = data_paths(data)
    manifest = {
        "commit": git["commit"],
        "dirty": git["dirty"],
        "code_files": len(code),
        "data_files": [p.as_posix() for p in inputs],
    }
    readme = RERUN.format(
        commit=commit,
        tree=tree,
        archive=output.name,
        root=root,
        replication=REPLICATION,
        torch_index=TORCH_CPU_INDEX,
        data=(
            "The input data are included at their original paths."
            if inputs
            else "The input data are not included (the target `archive_with_data` includes them)."
        ),
    )
    with atomic_path(output) as tmp:
        with (
            open(tmp, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped,
            tarfile.open(fileobj=zipped, mode="w") as tar,
        ):
            for path in code:
                mode = 0o755 if os.access(repo / path, os.X_OK) else 0o644
                _add(tar, f"{root}/{path.as_posix()}", (repo / path).read_bytes(), mode)
            for path in inputs:
                _add(tar, f"{root}/{path.as_posix()}", path.read_bytes())
            replication = {
                "config.yaml": Path(config_yaml).read_bytes(),
                "checksums.tsv": Path(checksums_tsv).read_bytes(),
                "environment.json": Path(environment_json).read_bytes(),
                "requirements.lock": requirements_lock(environment["packages"]).encode(),
                "manifest.json": (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode(),
                "README.md": readme.encode(),
            }
            for name, content in replication.items():
                _add(tar, f"{root}/{REPLICATION}/{name}", content)
    log.info("%s: %d code files from %s, %d data files", output, len(code), repo, len(inputs))
    return manifest
