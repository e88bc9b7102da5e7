"""Training checkpoints: which ones a rerun may resume from, and when one counts as complete.

Checkpoints go to results/NAME/checkpoints/{variant}/{stage}/, outside the rule's declared output,
so a job killed by a time limit resumes from the newest one on rerun. A checkpoint counts once its
`complete.json` (the list of its files, written atomically after the trainer saved it) is there; one
without it (a job killed while saving) is moved aside into `incomplete/`, and the rerun resumes from
the newest complete one. A checkpoint written under other settings, data or base is discarded: the
folder's `run_key.json` holds the hash of what its checkpoints depend on.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from locallm.hashing import fingerprint
from locallm.logs import get_logger
from locallm.tables import write_json

log = get_logger("checkpoints")

RUN_KEY = "run_key.json"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
COMPLETE = "complete.json"  # written last, atomically: a checkpoint without it is unfinished
INCOMPLETE = "incomplete"  # where unfinished checkpoints are moved aside (not a checkpoint-N name)


def run_key(stage: str, settings: dict[str, Any], seed: int, inputs: list[str]) -> str:
    """A hash of what a checkpoint depends on: settings, seed and the inputs' contents."""
    digest = hashlib.sha256(json.dumps([stage, settings, seed], sort_keys=True).encode())
    for folder in inputs:
        folder = Path(folder)
        files = sorted(folder.rglob("*.json")) if folder.is_dir() else [folder]
        for path in files:
            digest.update(str(path.relative_to(folder) if folder.is_dir() else path.name).encode())
            digest.update(path.read_bytes())
        if folder.is_dir():
            digest.update(fingerprint(folder).encode())
            # Not datasets' cache-*.arrow: the first run writes them, and its rerun must match.
            for arrow in sorted(folder.rglob("data-*.arrow")):
                digest.update(f"{arrow.relative_to(folder)}:{arrow.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def mark_complete(checkpoint: str | Path) -> None:
    """Record a checkpoint as complete: the name and size of every file it holds, written last."""
    checkpoint = Path(checkpoint)
    files = {
        path.relative_to(checkpoint).as_posix(): path.stat().st_size
        for path in sorted(checkpoint.rglob("*"))
        if path.is_file() and path.name != COMPLETE
    }
    write_json({"files": files}, checkpoint / COMPLETE)


def is_complete(checkpoint: str | Path) -> bool:
    """True when the checkpoint's marker exists and every file it lists is there, at its size.

    The file list also catches a complete checkpoint half deleted by the trainer's rotation.
    """
    checkpoint = Path(checkpoint)
    try:
        files = json.loads((checkpoint / COMPLETE).read_text())["files"]
    except (OSError, ValueError, KeyError):
        return False
    for name, size in files.items():
        path = checkpoint / name
        if not path.is_file() or path.stat().st_size != size:
            return False
    return True


def _read_key(key_file: Path) -> str | None:
    """The run key a checkpoint folder was written under; None when absent or unreadable."""
    try:
        return json.loads(key_file.read_text())["key"]
    except (OSError, ValueError, KeyError):
        return None


def newest_checkpoint(checkpoints: str | Path, key: str) -> str | None:
    """The newest complete checkpoint-N written under the same run key.

    Checkpoints of other settings or inputs are removed; unfinished ones (a job killed while it
    saved) are moved aside into `incomplete/`, so the rerun resumes from the newest complete one.
    """
    checkpoints = Path(checkpoints)
    key_file = checkpoints / RUN_KEY
    if checkpoints.exists() and _read_key(key_file) != key:
        stale = sorted(checkpoints.glob("checkpoint-*"))
        if stale:
            log.info("discarding %d checkpoint(s) of other settings or inputs", len(stale))
        shutil.rmtree(checkpoints)
    checkpoints.mkdir(parents=True, exist_ok=True)
    write_json({"key": key}, key_file)
    found = sorted(
        (int(match.group(1)), path)
        for path in checkpoints.iterdir()
        if path.is_dir() and (match := CHECKPOINT.match(path.name))
    )
    newest = None
    for _, path in found:
        if is_complete(path):
            newest = path
            continue
        aside = checkpoints / INCOMPLETE / f"{path.name}-{time.strftime('%Y%m%dT%H%M%S')}"
        aside.parent.mkdir(exist_ok=True)
        os.replace(path, aside)
        log.warning("checkpoint %s is incomplete (killed while saving): moved to %s", path, aside)
    return str(newest) if newest is not None else None


def checkpoint_marker():
    """A TrainerCallback that marks each checkpoint complete once the trainer has saved it."""
    from transformers import TrainerCallback

    class MarkComplete(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if folder.is_dir():
                    mark_complete(folder)

    return MarkComplete()


def keep_trained_dtypes(model):
    """A TrainerCallback that gives a resumed run's trainable weights, and their optimizer state,
    the dtypes the trainer trains them in.

    TRL's trainers cast QLoRA adapters to bfloat16 (as the QLoRA paper does); loading them back
    from a checkpoint makes them float32, so a resumed run went on in another precision than an
    uninterrupted one and ended up to 6.5e-3 away from it. Recorded here before training, restored
    once the checkpoint is loaded.
    """
    import torch
    from transformers import TrainerCallback

    dtypes = {name: p.dtype for name, p in model.named_parameters() if p.requires_grad}

    class KeepDtypes(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
            if state.global_step == 0 or model is None:
                return  # not resumed: nothing was loaded
            for name, param in model.named_parameters():
                wanted = dtypes.get(name)
                if wanted is None or param.dtype == wanted:
                    continue
                param.data = param.data.to(wanted)
                if optimizer is not None and param in optimizer.state:
                    state_of = optimizer.state[param]
                    for key, value in state_of.items():
                        if key != "step" and torch.is_tensor(value) and value.is_floating_point():
                            state_of[key] = value.to(wanted)

    return KeepDtypes()
