"""SFT and DPO with TRL: QLoRA (default), LoRA or full fine-tuning, resuming from checkpoints.

Both stages go the same way: `prepare_stage` (threads, the run key of the stage's inputs, the
checkpoint to resume from, the precision), a TRL trainer, `run_trainer`, then `finish_stage` (the
stage folder and its run_info.json). Checkpoints and resume: locallm.train.checkpoints; what a stage
measures and writes: locallm.train.records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from locallm.hashing import fingerprint
from locallm.logs import get_logger
from locallm.model.loading import load_stage_model, local_model_dir
from locallm.model.precision import on_gpu
from locallm.tables import atomic_dir, read_table, write_json
from locallm.train.checkpoints import checkpoint_marker, newest_checkpoint, run_key
from locallm.train.records import (
    environment,
    parameter_counts,
    run_trainer,
    save_stage,
    train_log,
)
from locallm.train.tokenization import Collator, fit_prompt

log = get_logger("training")

# The keyword arguments of each stage whose contents its checkpoints depend on (with the base). The
# DDP launcher settles stale checkpoints from the same list, so the two can never drift apart.
RUN_KEY_INPUTS = {"sft": ("tokenized",), "dpo": ("sft", "preferences")}


def training_precision(settings: dict[str, Any]) -> str:
    """`float32` or `bfloat16`: training.precision, `auto` resolved for this device and method.

    bfloat16 means autocast: float32 weights and optimizer, bf16 matmuls (QLoRA's 4-bit ones too).
    `auto` is bf16 on a GPU that supports it and float32 on the CPU: on a CPU with bf16 instructions
    autocast is 1.3-1.8x faster per step on SmolLM2, but its QLoRA SFT stage learned less
    (macro-F1 0.84 -> 0.68 on config/smollm2.yaml, docs/performance.md), so there it is asked for.
    """
    if settings["precision"] != "auto":
        return settings["precision"]
    return "bfloat16" if on_gpu() and torch.cuda.is_bf16_supported() else "float32"


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


@dataclass
class StageRun:
    """A stage about to train: its settings, the base, where it resumes and in which precision."""

    stage: str
    settings: dict[str, Any]
    base_path: str
    base_dir: str
    checkpoints: str
    seed: int
    resume_from: str | None
    precision: str

    def load_model(self, adapter_dir: str | None = None, *, trainable: bool = True):
        """(model, tokenizer) of this stage's method and precision; see load_stage_model."""
        model, tokenizer = load_stage_model(
            self.settings,
            self.base_path,
            adapter_dir,
            trainable=trainable,
            precision=self.precision,
        )
        if trainable:
            model.config.use_cache = False
        return model, tokenizer

    def trainer_args(self, max_steps: int) -> dict[str, Any]:
        """TrainingArguments shared by SFT and DPO."""
        settings = self.settings
        return {
            "output_dir": self.checkpoints,
            "max_steps": max_steps,
            "per_device_train_batch_size": settings["per_device_batch_size"],
            "gradient_accumulation_steps": settings["gradient_accumulation_steps"],
            "lr_scheduler_type": settings["lr_scheduler_type"],
            "warmup_steps": settings["warmup_steps"],
            "weight_decay": settings["weight_decay"],
            "logging_steps": logging_interval(settings["logging_steps"], max_steps),
            "save_steps": settings["save_steps"],
            "save_total_limit": settings["save_total_limit"],
            "seed": self.seed,
            "data_seed": self.seed,
            "use_cpu": not on_gpu(),
            # On the CPU, bf16 is autocast (accelerate); the weights stay float32.
            "bf16": self.precision == "bfloat16",
            # Both names, always: TRL's configs default checkpointing to on, and transformers 5
            # warns when only the old name is given.
            "activation_checkpointing": settings["gradient_checkpointing"],
            "gradient_checkpointing": settings["gradient_checkpointing"],
            "report_to": [],
            "disable_tqdm": True,
            "dataloader_num_workers": 0,
            "include_num_input_tokens_seen": "non_padding",
            "save_only_model": False,
        }


def training_examples(train) -> int:
    """Examples in a tokenized train split: packed sequences hold several (`seq_lengths`)."""
    if "seq_lengths" in train.column_names:
        return int(sum(len(lengths) for lengths in train["seq_lengths"]))
    return len(train)


def logging_interval(logging_steps: int, max_steps: int) -> int:
    """Steps between train_log rows: `logging_steps`, or fewer for a short run, so that its
    train_log.tsv and loss plot have a row for at least every tenth of it (8 DPO steps logged
    every 5 would plot one point)."""
    return max(1, min(logging_steps, max_steps // 10))


def stage_key(stage: str, settings: dict[str, Any], seed: int, base_dir: str, inputs: dict) -> str:
    """The run key of a stage: its settings, seed, base and the inputs of RUN_KEY_INPUTS."""
    return run_key(stage, settings, seed, [*(inputs[n] for n in RUN_KEY_INPUTS[stage]), base_dir])


def prepare_stage(
    stage: str,
    inputs: dict[str, str],
    base_path: str,
    settings: dict[str, Any],
    checkpoints: str,
    seed: int,
    threads: int,
) -> StageRun:
    """Threads, the checkpoint to resume from (stale ones discarded) and the precision."""
    torch.set_num_threads(threads)
    base_dir = local_model_dir(base_path, settings)
    key = stage_key(stage, settings, seed, base_dir, inputs)
    run = StageRun(
        stage=stage,
        settings=settings,
        base_path=base_path,
        base_dir=base_dir,
        checkpoints=checkpoints,
        seed=seed,
        resume_from=newest_checkpoint(checkpoints, key),
        precision=training_precision(settings),
    )
    log.info("%s: %s, %s", stage, settings["method"], run.precision)
    return run


def finish_stage(
    run: StageRun, trainer, tokenizer, output: str, measured: dict[str, Any], **details: Any
) -> dict[str, Any]:
    """Write the stage folder with its run_info.json: settings, base, precision, `details`, the
    measured figures, parameter counts and the environment. Returns the run info."""
    settings, model = run.settings, trainer.model
    info = {
        "stage": run.stage,
        "method": settings["method"],
        "base": settings["base"],
        "base_path": run.base_path,
        "base_fingerprint": fingerprint(run.base_dir),
        "precision": run.precision,
        "gradient_checkpointing": bool(getattr(model, "is_activation_checkpointing", False)),
        "seed": run.seed,
        "settings": settings,
        **details,
        **measured,
        **parameter_counts(model),
        **environment(),
    }
    save_stage(trainer, tokenizer, output, info, f"{run.stage.upper()} ({settings['method']})")
    return info


def train_sft(
    tokenized: str,
    base_path: str,
    settings: dict[str, Any],
    output: str,
    checkpoints: str,
    seed: int,
    threads: int,
    callbacks: Sequence = (),
) -> None:
    """Supervised fine-tuning on the tokenized train split; resumes from the newest checkpoint.

    `callbacks`: more TrainerCallbacks (tests inject one that interrupts the run).
    """
    from datasets import load_from_disk
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    inputs = {"tokenized": tokenized}
    run = prepare_stage("sft", inputs, base_path, settings, checkpoints, seed, threads)
    data = load_from_disk(tokenized)
    tokenizer = AutoTokenizer.from_pretrained(Path(tokenized) / "tokenizer")
    model, _ = run.load_model()
    args = SFTConfig(
        **run.trainer_args(settings["max_steps"]),
        learning_rate=settings["learning_rate"],
        max_length=settings["max_length"],
        # The tokenize rule already packed the examples; the collator turns seq_lengths into
        # position ids, and SFTTrainer must not pack again.
        packing=False,
        padding_free=False,
        neftune_noise_alpha=settings["neftune_noise_alpha"],
        dataset_num_proc=None,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=data["train"],
        processing_class=tokenizer,
        data_collator=Collator(tokenizer.pad_token_id),
        peft_config=lora_config(settings),
        callbacks=[checkpoint_marker(), *callbacks],
    )
    measured = run_trainer(trainer, run.resume_from, "sft")
    info = finish_stage(
        run,
        trainer,
        tokenizer,
        output,
        measured,
        packing=settings["packing"],
        train_sequences=len(data["train"]),
        train_examples=training_examples(data["train"]),
    )
    log.info("SFT: %(steps)d steps, %(tokens_per_s).0f tokens/s, final loss %(final_loss)s", info)


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
    callbacks: Sequence = (),
) -> None:
    """DPO from the SFT stage, with the frozen SFT model as the reference.

    For adapters, TRL copies the loaded SFT adapter into a frozen adapter named "ref" and computes
    the reference log-probabilities with it (not with the bare base); for full fine-tuning the
    reference is a second, frozen copy of the SFT model. `callbacks`: as for train_sft.
    """
    from trl import DPOConfig, DPOTrainer

    inputs = {"sft": sft, "preferences": preferences}
    run = prepare_stage("dpo", inputs, base_path, settings, checkpoints, seed, threads)
    model, tokenizer = run.load_model(sft)
    full = settings["method"] == "full"
    ref_model = run.load_model(sft, trainable=False)[0] if full else None
    max_length = settings["dpo_max_length"] or settings["max_length"]
    args = DPOConfig(
        **run.trainer_args(settings["dpo_max_steps"]),
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
        callbacks=[checkpoint_marker(), *callbacks],
    )
    measured = run_trainer(trainer, run.resume_from, "dpo")
    history = train_log(trainer.state.log_history)
    pairs = len(trainer.train_dataset)
    info = finish_stage(
        run,
        trainer,
        tokenizer,
        output,
        measured,
        reference="sft model" if full else "sft adapter (frozen copy)",
        preference_pairs=pairs,
        beta=settings["dpo_beta"],
        loss_type=settings["dpo_loss_type"],
        final_reward_accuracy=history["reward_accuracy"].iloc[-1] if len(history) else None,
        final_reward_margin=history["reward_margin"].iloc[-1] if len(history) else None,
    )
    log.info("DPO: %(steps)d steps, reward accuracy %(final_reward_accuracy)s", info)


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
