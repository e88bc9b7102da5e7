"""Run a training stage in this process, or as a DDP run of several (torchrun: one per GPU, gloo
on the CPU) whose children re-enter here: `python -m locallm.train.launch STAGE SPEC.json`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from locallm.logs import get_logger
from locallm.model.loading import local_model_dir
from locallm.train.checkpoints import newest_checkpoint
from locallm.train.training import stage_key, train_dpo, train_sft

log = get_logger("launch")

STAGES = {"sft": train_sft, "dpo": train_dpo}


def _fd_or_none(stream):
    """`stream` when it is a real file (a rule's log), else None (inherit, e.g. under pytest)."""
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return stream


def run_stage(stage: str, num_processes: int, **kwargs: Any) -> None:
    """Train a stage in this process, or as a DDP run of `num_processes` processes (torchrun: one
    per GPU, gloo on the CPU) whose output goes to this process's log."""
    if num_processes == 1:
        STAGES[stage](**kwargs)
        return
    settings, seed = kwargs["settings"], kwargs["seed"]
    base_dir = local_model_dir(kwargs["base_path"], settings)
    # Settle stale checkpoints here, once, rather than in every process at the same time.
    newest_checkpoint(kwargs["checkpoints"], stage_key(stage, settings, seed, base_dir, kwargs))
    threads = max(1, kwargs["threads"] // num_processes)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        json.dump({**kwargs, "threads": threads}, spec)
    scripts = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([scripts, os.environ.get("PYTHONPATH", "")])}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={num_processes}",
        "-m",
        "locallm.train.launch",
        stage,
        spec.name,
    ]
    log.info("launching %s", " ".join(command))
    try:
        subprocess.run(
            command,
            check=True,
            env=env,
            stdout=_fd_or_none(sys.stdout),
            stderr=_fd_or_none(sys.stderr),
        )
    finally:
        os.unlink(spec.name)


if __name__ == "__main__":
    # One process of a torchrun launch: `python -m locallm.train.launch STAGE SPEC.json`.
    import logging

    logging.basicConfig(level=logging.INFO)
    STAGES[sys.argv[1]](**json.loads(Path(sys.argv[2]).read_text()))
