"""What a training stage measures and leaves in its folder: the adapter (or the full model), the
tokenizer, train_log.tsv, loss.png and run_info.json (wall and CPU time, tokens/s, peak memory,
parameter counts, where it ran)."""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from locallm.logs import get_logger
from locallm.machine import cpu_flags, cpu_model
from locallm.model.facts import RUN_INFO
from locallm.model.precision import on_gpu
from locallm.tables import atomic_dir, save_figure, write_json, write_tsv
from locallm.train.checkpoints import keep_trained_dtypes
from locallm.train.progress import progress_logger

log = get_logger("training")

PACKAGES = ["torch", "transformers", "peft", "trl", "bitsandbytes", "datasets", "accelerate"]
# Columns of train_log.tsv: the trainer's log keys, renamed; DPO adds its reward statistics.
LOG_COLUMNS = {
    "step": "step",
    "loss": "loss",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
    "num_input_tokens_seen": "tokens",
    "rewards/chosen": "reward_chosen",
    "rewards/rejected": "reward_rejected",
    "rewards/accuracies": "reward_accuracy",
    "rewards/margins": "reward_margin",
}


def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory of this process, and peak GPU memory allocated when on a GPU."""
    peak = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if on_gpu():
        peak["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peak


def environment() -> dict[str, Any]:
    """Where this ran: device, package versions, SLURM job."""
    env = {
        "device": torch.cuda.get_device_name(0) if on_gpu() else f"cpu ({cpu_model()})",
        "cpu_flags": cpu_flags(),
        "python": platform.python_version(),
        "packages": {name: version(name) for name in PACKAGES},
        "torch_threads": torch.get_num_threads(),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
    }
    for name in ("SLURM_JOB_ID", "SLURM_JOB_PARTITION"):
        if name in os.environ:
            env[name.lower()] = os.environ[name]
    return env


def train_log(log_history: list[dict[str, Any]]) -> pd.DataFrame:
    """The per-step rows of the trainer's log history, with the project's column names."""
    rows = [entry for entry in log_history if "loss" in entry]
    table = pd.DataFrame(rows)
    present = [key for key in LOG_COLUMNS if key in table.columns]
    return table[present].rename(columns=LOG_COLUMNS)


def plot_training(history: pd.DataFrame, title: str):
    """Loss per step and, for DPO, the reward accuracy and margin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ["loss"] + [c for c in ("reward_accuracy", "reward_margin") if c in history]
    # Constrained layout keeps the panels' axis labels and the title from overlapping.
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4 * len(panels), 3), squeeze=False, layout="constrained"
    )
    for ax, column in zip(axes[0], panels, strict=True):
        ax.plot(history["step"], history[column], marker=".")
        ax.set_xlabel("step")
        ax.set_ylabel(column)
    fig.suptitle(title)
    return fig


def logical_numel(parameter) -> int:
    """Weights a parameter stands for: a 4-bit one packs two in each stored byte, and its
    quant_state keeps the unpacked shape (counting storage would halve QLoRA's total)."""
    state = getattr(parameter, "quant_state", None)
    return math.prod(state.shape) if state is not None else parameter.numel()


def parameter_counts(model) -> dict[str, int]:
    """Trainable and total parameters (4-bit weights counted unpacked), and the number of 4-bit
    linear layers."""
    import bitsandbytes as bnb

    return {
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total_parameters": sum(logical_numel(p) for p in model.parameters()),
        "linear_4bit_layers": sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules()),
    }


class AlreadyDone(Exception):
    """Resumed from a checkpoint at the last step: the trainer would otherwise take one more."""


def stop_when_done():
    """A TrainerCallback that ends a run resumed at its last step before any step is taken.

    transformers checks max_steps only after a step, so a run resumed from its final checkpoint,
    mid-epoch, trains one step too many (41 of 40). By on_train_begin the trainer has loaded the
    checkpoint's weights and state, which are the finished run.
    """
    from transformers import TrainerCallback

    class StopWhenDone(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps > 0:
                raise AlreadyDone(state.global_step)

    return StopWhenDone()


def run_trainer(trainer, checkpoint: str | None, stage: str = "training") -> dict[str, Any]:
    """Train (resuming from `checkpoint`), and measure wall time, tokens/s and memory."""
    from transformers.trainer_callback import PrinterCallback

    # Progress lines with step, total and time left replace the trainer's raw dictionaries.
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(progress_logger(stage))
    trainer.add_callback(stop_when_done())
    trainer.add_callback(keep_trained_dtypes(trainer.model))
    if checkpoint:
        log.info("resuming from %s", checkpoint)
    started, cpu_started = time.perf_counter(), time.process_time()
    start_tokens = 0
    if checkpoint:
        state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
        start_tokens = state.get("num_input_tokens_seen", 0)
    try:
        result = trainer.train(resume_from_checkpoint=checkpoint)
        metrics = result.metrics
    except AlreadyDone as done:
        # Killed after its last checkpoint (e.g. while writing the stage): the checkpoint's
        # weights and log are the finished run.
        log.info("%s is at the last step %s: nothing left to train", checkpoint, done)
        metrics = {}
    seconds = time.perf_counter() - started
    # CPU seconds of this process (all threads): comparable between runs on a shared machine.
    cpu_seconds = time.process_time() - cpu_started
    tokens = trainer.state.num_input_tokens_seen - start_tokens
    history = [e for e in trainer.state.log_history if "loss" in e]
    runtime = metrics.get("train_runtime", seconds)
    return {
        "steps": trainer.state.global_step,
        "resumed_from": checkpoint,
        "wall_time_s": round(seconds, 2),
        "train_runtime_s": round(runtime, 2),
        "tokens": tokens,
        "tokens_per_s": round(tokens / max(runtime, 1e-9), 1),
        "cpu_time_s": round(cpu_seconds, 2),
        "tokens_per_cpu_s": round(tokens / max(cpu_seconds, 1e-9), 1),
        "final_loss": history[-1]["loss"] if history else None,
        **peak_memory_mb(),
    }


def save_stage(trainer, tokenizer, output: str, info: dict[str, Any], title: str) -> None:
    """Write the adapter (or model), tokenizer, train_log.tsv, loss.png and run_info.json."""
    from peft import PeftModel

    if not trainer.is_world_process_zero():
        return
    history = train_log(trainer.state.log_history)
    model = trainer.model
    with atomic_dir(output) as folder:
        if isinstance(model, PeftModel):
            # Only the trained adapter; DPO also holds a frozen copy named "ref".
            model.save_pretrained(folder, selected_adapters=["default"])
        else:
            model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        write_tsv(history, folder / "train_log.tsv")
        save_figure(plot_training(history, title), folder / "loss.png")
        write_json(info, folder / RUN_INFO)
