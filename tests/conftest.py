"""Helpers of the workflow tests: a copy of the workflow per session, snakemake in a subprocess.

`locallm` is imported from the environment (`pip install -r requirements.txt` installs it).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

WORKFLOW_FILES = ["Snakefile", "config", "workflow", "envs", "profiles"]

# A small Llama config.json with grouped-query attention and an MLP unlike 4x hidden, so no term of
# a parameter or memory count hides another (shape, estimate and pre-flight tests).
TINY_LLAMA_CONFIG = {
    "vocab_size": 300,
    "hidden_size": 64,
    "intermediate_size": 160,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
}


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow (not results) into `dest`, so a test run never touches the checkout."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def snakemake(
    workdir: Path,
    *args: str,
    check: bool = True,
    env: dict[str, str] | None = None,
    configfile: str = "config/test.yaml",
) -> subprocess.CompletedProcess:
    """Run snakemake in `workdir` on `configfile`; on failure show its output and the logs.

    `env`: variables added to this process's environment.
    """
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "2",
        # One token: `--configfile` takes several values and would swallow the targets after it.
        f"--configfile={configfile}",
    ]
    result = subprocess.run(
        [*command, *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        logs = "\n".join(
            f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted((workdir / "logs").rglob("*.log"))
        )
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{result.stderr[-6000:]}\n{logs[-12000:]}")
    return result


@pytest.fixture(scope="session")
def test_workflow(tmp_path_factory) -> Path:
    """One copy of the workflow per test session; tests build the targets they need in it.

    Snakemake only runs what is missing, so the data half is built once for all workflow tests.
    """
    return copy_workflow(tmp_path_factory.mktemp("workflow"))
