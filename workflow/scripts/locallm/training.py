"""SFT and DPO with TRL: QLoRA (default), LoRA or full fine-tuning, with checkpoints and resume.

Checkpoints go to results/checkpoints/{variant}/{stage}/, outside the rule's declared output, so a
job killed by a time limit resumes from the newest one on rerun. A checkpoint counts once its
`complete.json` (the list of its files, written atomically after the trainer saved it) is there; one
without it (a job killed while saving) is moved aside into `incomplete/`, and the rerun resumes from
the newest complete one. A checkpoint written under other settings, data or base is discarded.
The stage folder gets the adapter (or the full model), the tokenizer, train_log.tsv, loss.png and
run_info.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from locallm.logs import get_logger
from locallm.models import RUN_INFO, fingerprint, load_stage_model, local_model_dir, on_gpu
from locallm.tables import atomic_dir, read_table, save_figure, write_json, write_tsv
from locallm.tokenization import Collator, fit_prompt

log = get_logger("training")

PACKAGES = ["torch", "transformers", "peft", "trl", "bitsandbytes", "datasets", "accelerate"]
RUN_KEY = "run_key.json"
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


def lora_config(settings: dict[str, Any]):
    """The LoraConfig of a variant (None for full fine-tuning)."""
    if settings["method"] == "full":
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=settings["lora_r"],
        lora_alpha=settings["lora_alpha"],
        lora_dropout=settings["lora_dropout"],
        target_modules=settings["target_modules"],
        use_dora=settings["use_dora"],
        use_rslora=settings["use_rslora"],
        task_type="CAUSAL_LM",
    )


def common_args(
    settings: dict[str, Any], checkpoints: str, seed: int, max_steps: int
) -> dict[str, Any]:
    """TrainingArguments shared by SFT and DPO."""
    return {
        "output_dir": checkpoints,
        "max_steps": max_steps,
        "per_device_train_batch_size": settings["per_device_batch_size"],
        "gradient_accumulation_steps": settings["gradient_accumulation_steps"],
        "lr_scheduler_type": settings["lr_scheduler_type"],
        "warmup_steps": settings["warmup_steps"],
        "weight_decay": settings["weight_decay"],
        # A run shorter than logging_steps would log nothing, and train_log.tsv would be empty.
        "logging_steps": min(settings["logging_steps"], max_steps),
        "save_steps": settings["save_steps"],
        "save_total_limit": settings["save_total_limit"],
        "seed": seed,
        "data_seed": seed,
        "use_cpu": not on_gpu(),
        "bf16": on_gpu() and torch.cuda.is_bf16_supported(),
        "report_to": [],
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "include_num_input_tokens_seen": "non_padding",
        "save_only_model": False,
        # Passed only when on: transformers 5 warns about the old name even when it is False.
        **({"gradient_checkpointing": True} if settings["gradient_checkpointing"] else {}),
    }


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


CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
COMPLETE = "complete.json"  # written last, atomically: a checkpoint without it is unfinished
INCOMPLETE = "incomplete"  # where unfinished checkpoints are moved aside (not a checkpoint-N name)


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


def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory of this process, and peak GPU memory allocated when on a GPU."""
    peak = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if on_gpu():
        peak["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peak


def environment() -> dict[str, Any]:
    """Where this ran: device, package versions, SLURM job."""
    env = {
        "device": torch.cuda.get_device_name(0) if on_gpu() else f"cpu ({platform.processor()})",
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
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3), squeeze=False)
    for ax, column in zip(axes[0], panels, strict=True):
        ax.plot(history["step"], history[column], marker=".")
        ax.set_xlabel("step")
        ax.set_ylabel(column)
    fig.suptitle(title)
    return fig


def parameter_counts(model) -> dict[str, int]:
    """Trainable and total parameters, and the number of 4-bit linear layers."""
    import bitsandbytes as bnb

    return {
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total_parameters": sum(p.numel() for p in model.parameters()),
        "linear_4bit_layers": sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules()),
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


def run_trainer(trainer, checkpoint: str | None) -> dict[str, Any]:
    """Train (resuming from `checkpoint`), and measure wall time, tokens/s and memory."""
    if checkpoint:
        log.info("resuming from %s", checkpoint)
    started, cpu_started = time.perf_counter(), time.process_time()
    start_tokens = 0
    if checkpoint:
        state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
        start_tokens = state.get("num_input_tokens_seen", 0)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - started
    # CPU seconds of this process (all threads): comparable between runs on a shared machine.
    cpu_seconds = time.process_time() - cpu_started
    tokens = trainer.state.num_input_tokens_seen - start_tokens
    history = [e for e in trainer.state.log_history if "loss" in e]
    return {
        "steps": trainer.state.global_step,
        "resumed_from": checkpoint,
        "wall_time_s": round(seconds, 2),
        "train_runtime_s": round(result.metrics.get("train_runtime", seconds), 2),
        "tokens": tokens,
        "tokens_per_s": round(tokens / max(result.metrics.get("train_runtime", seconds), 1e-9), 1),
        "cpu_time_s": round(cpu_seconds, 2),
        "tokens_per_cpu_s": round(tokens / max(cpu_seconds, 1e-9), 1),
        "final_loss": history[-1]["loss"] if history else None,
        **peak_memory_mb(),
    }


def train_sft(
    tokenized: str,
    base_path: str,
    settings: dict[str, Any],
    output: str,
    checkpoints: str,
    seed: int,
    threads: int,
    stop_after_steps: int | None = None,
) -> None:
    """Supervised fine-tuning on the tokenized train split; resumes from the newest checkpoint.

    `stop_after_steps` ends the run early without writing `output` (tests of resume).
    """
    from datasets import load_from_disk
    from transformers import AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    torch.set_num_threads(threads)
    base_dir = local_model_dir(base_path, settings)
    key = run_key("sft", settings, seed, [tokenized, base_dir])
    checkpoint = newest_checkpoint(checkpoints, key)
    data = load_from_disk(tokenized)
    tokenizer = AutoTokenizer.from_pretrained(Path(tokenized) / "tokenizer")
    model, _ = load_stage_model(settings, base_path, None, trainable=True)
    model.config.use_cache = False
    args = SFTConfig(
        **common_args(settings, checkpoints, seed, settings["max_steps"]),
        learning_rate=settings["learning_rate"],
        max_length=settings["max_length"],
        # The tokenize rule already packed the examples; the collator turns seq_lengths into
        # position ids, and SFTTrainer must not pack again.
        packing=False,
        padding_free=False,
        neftune_noise_alpha=settings["neftune_noise_alpha"],
        dataset_num_proc=None,
    )
    callbacks = [checkpoint_marker()]
    if stop_after_steps is not None:

        class StopAfter(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                control.should_training_stop = state.global_step >= stop_after_steps

        callbacks.append(StopAfter())
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=data["train"],
        processing_class=tokenizer,
        data_collator=Collator(tokenizer.pad_token_id),
        peft_config=lora_config(settings),
        callbacks=callbacks,
    )
    measured = run_trainer(trainer, checkpoint)
    if stop_after_steps is not None:
        trainer.save_model(str(Path(checkpoints) / "stopped"))
        return
    info = {
        "stage": "sft",
        "method": settings["method"],
        "base": settings["base"],
        "base_path": base_path,
        "base_fingerprint": fingerprint(base_dir),
        "packing": settings["packing"],
        "seed": seed,
        "settings": settings,
        "train_sequences": len(data["train"]),
        **measured,
        **parameter_counts(trainer.model),
        **environment(),
    }
    save_stage(trainer, tokenizer, output, info, f"SFT ({settings['method']})")
    log.info(
        "SFT: %d steps, %.0f tokens/s, final loss %s",
        info["steps"],
        info["tokens_per_s"],
        info["final_loss"],
    )


def preference_dataset(path: str, tokenizer, max_length: int):
    """A datasets.Dataset of conversational prompt/chosen/rejected rows, prompts cut to fit.

    TRL would cut a sequence longer than max_length at its end, losing the answers; cutting the
    prompt's text instead (as tokenize does for SFT) keeps them.
    """
    from datasets import Dataset

    table = read_table(path, columns=["prompt", "chosen", "rejected"])
    if table.empty:
        raise ValueError(f"{path}: no preference pairs to train DPO on")
    rows = {c: [[dict(m) for m in v] for v in table[c]] for c in table.columns}
    cut = 0
    for i, prompt in enumerate(rows["prompt"]):
        answers = [rows[c][i][-1]["content"] for c in ("chosen", "rejected")]
        # The answer's tokens, its end-of-turn marker and EOS, with slack for the template.
        answer = max(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers)
        rows["prompt"][i], truncated = fit_prompt(prompt, tokenizer, max_length - answer - 8)
        cut += truncated
    if cut:
        log.info(
            "%d of %d preference prompts had their text cut to fit %d tokens",
            cut,
            len(table),
            max_length,
        )
    return Dataset.from_dict(rows)


def train_dpo(
    sft: str,
    preferences: str,
    base_path: str,
    settings: dict[str, Any],
    output: str,
    checkpoints: str,
    seed: int,
    threads: int,
) -> None:
    """DPO from the SFT stage, with the frozen SFT model as the reference.

    For adapters, TRL copies the loaded SFT adapter into a frozen adapter named "ref" and computes
    the reference log-probabilities with it (not with the bare base); for full fine-tuning the
    reference is a second, frozen copy of the SFT model.
    """
    from trl import DPOConfig, DPOTrainer

    torch.set_num_threads(threads)
    base_dir = local_model_dir(base_path, settings)
    key = run_key("dpo", settings, seed, [sft, preferences, base_dir])
    checkpoint = newest_checkpoint(checkpoints, key)
    model, tokenizer = load_stage_model(settings, base_path, sft, trainable=True)
    model.config.use_cache = False
    ref_model = None
    if settings["method"] == "full":
        ref_model, _ = load_stage_model(settings, base_path, sft)
    max_length = settings["dpo_max_length"] or settings["max_length"]
    args = DPOConfig(
        **common_args(settings, checkpoints, seed, settings["dpo_max_steps"]),
        learning_rate=settings["dpo_learning_rate"],
        max_length=max_length,
        beta=settings["dpo_beta"],
        loss_type=[settings["dpo_loss_type"]],
    )
    trainer = DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=preference_dataset(preferences, tokenizer, max_length),
        processing_class=tokenizer,
        callbacks=[checkpoint_marker()],
    )
    measured = run_trainer(trainer, checkpoint)
    history = train_log(trainer.state.log_history)
    info = {
        "stage": "dpo",
        "method": settings["method"],
        "base": settings["base"],
        "base_path": base_path,
        "base_fingerprint": fingerprint(base_dir),
        "reference": "sft adapter (frozen copy)" if settings["method"] != "full" else "sft model",
        "beta": settings["dpo_beta"],
        "loss_type": settings["dpo_loss_type"],
        "seed": seed,
        "settings": settings,
        "final_reward_accuracy": history["reward_accuracy"].iloc[-1] if len(history) else None,
        "final_reward_margin": history["reward_margin"].iloc[-1] if len(history) else None,
        **measured,
        **parameter_counts(trainer.model),
        **environment(),
    }
    save_stage(trainer, tokenizer, output, info, f"DPO ({settings['method']})")
    log.info(
        "DPO: %d steps, reward accuracy %s, margin %s",
        info["steps"],
        info["final_reward_accuracy"],
        info["final_reward_margin"],
    )


def merge_stage(stage: str, base_path: str, settings: dict[str, Any], output: str) -> None:
    """Merge a stage's adapter into a 16/32-bit copy of the base and save_pretrained it."""
    from peft import PeftModel

    if settings["method"] == "full":
        raise ValueError("merge: a `full` variant has no adapter; its stage folder is the model")
    # Never merge into 4-bit weights: load the base unquantized whatever the training method.
    unquantized = {**settings, "method": "lora"}
    model, tokenizer = load_stage_model(unquantized, base_path, stage)
    if not isinstance(model, PeftModel):
        raise ValueError(f"{stage} holds no adapter to merge")
    merged = model.merge_and_unload()
    with atomic_dir(output) as folder:
        merged.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        write_json(
            {
                "merged_from": stage,
                "base_path": base_path,
                "base_fingerprint": fingerprint(local_model_dir(base_path, settings)),
                "dtype": str(merged.dtype),
                **environment(),
            },
            folder / "merge_info.json",
        )


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
    if stage == "sft":
        inputs = [kwargs["tokenized"]]
    else:
        inputs = [kwargs["sft"], kwargs["preferences"]]
    base_dir = local_model_dir(kwargs["base_path"], kwargs["settings"])
    # Settle stale checkpoints here, once, rather than in every process at the same time.
    newest_checkpoint(kwargs["checkpoints"], run_key(stage, kwargs["settings"], kwargs["seed"],
                                                     [*inputs, base_dir]))  # fmt: skip
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
        "locallm.training",
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
    # One process of a torchrun launch: `python -m locallm.training STAGE SPEC.json`.
    import logging

    logging.basicConfig(level=logging.INFO)
    STAGES[sys.argv[1]](**json.loads(Path(sys.argv[2]).read_text()))
