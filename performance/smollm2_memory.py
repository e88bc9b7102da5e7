"""Peak host memory (RSS) of SFT on the CPU, per method and batch shape, against
locallm.model.memory.estimate_host_training and its terms.

    snakemake --cores 2 --configfile config/smollm2.yaml \
        results/smollm2/models/converted/smollm2-135m-instruct   # once
    python performance/smollm2_memory.py --shapes 2x128 4x256 --methods qlora lora full

Each row is one child process running the workflow's own SFT job (locallm.train.training.train_sft,
TRL's SFTTrainer, a checkpoint saved at the last step, then the stage folder) for `--steps` steps
on packed sequences of random tokens, `batch` sequences of `seq` tokens per step, with the config
variant's settings (LoRA rank, targets, gradient checkpointing) and the method given. A thread
samples /proc/self/status every few milliseconds, so each phase (imports, loading the model,
training, saving) reports its own peak, split into anonymous memory and mapped file pages; the
row's peak is the kernel's high-water mark (VmHWM, what `ru_maxrss` reports). `ratio` is peak over
estimate; the target band is 0.85-1.15.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

from locallm.config import load_config, variant_settings  # noqa: E402
from locallm.model.memory import MB, estimate_host_training  # noqa: E402
from locallm.model.shape import read_model_config, shape_from_config  # noqa: E402

BAND = (0.85, 1.15)
PHASES = ("imports", "load", "train", "save")


def memory_now() -> dict[str, int]:
    """This process's resident memory in KiB: total, anonymous, file-backed, and its peak."""
    wanted = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file", "VmHWM": "hwm"}
    figures = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in wanted:
                figures[wanted[key]] = int(value.split()[0])
    return figures


class PhaseSampler:
    """Samples memory_now() in a thread; keeps each phase's highest total and its split."""

    def __init__(self, interval_s: float = 0.005):
        self.interval_s = interval_s
        self.phase = "imports"
        self.peaks: dict[str, dict[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _record(self) -> None:
        now = memory_now()
        peak = self.peaks.get(self.phase)
        if peak is None or now["rss"] > peak["rss"]:
            self.peaks[self.phase] = now

    def _run(self) -> None:
        while not self._stop.is_set():
            self._record()
            time.sleep(self.interval_s)

    def start(self) -> PhaseSampler:
        self._thread.start()
        return self

    def enter(self, phase: str) -> None:
        self._record()  # the end of the phase before
        self.phase = phase
        self._record()

    def stop(self) -> dict[str, dict[str, int]]:
        self._record()
        self._stop.set()
        self._thread.join()
        return self.peaks


def child(args) -> None:
    """One SFT run in this process; prints the phases' peaks and the high-water mark (MB)."""
    sampler = PhaseSampler().start()
    import locallm.train.training
    from locallm.train.training import train_sft

    # Mark the phases by wrapping what train_sft calls; the run itself is unchanged.
    load, run = locallm.train.training.load_stage_model, locallm.train.training.run_trainer

    def load_marked(*a, **k):
        sampler.enter("load")
        return load(*a, **k)

    def run_marked(trainer, *a, **k):
        # TRL's configs default to gradient checkpointing: record what the run really used.
        result["gradient_checkpointing"] = bool(trainer.args.gradient_checkpointing)
        sampler.enter("train")
        try:
            return run(trainer, *a, **k)
        finally:
            sampler.enter("save")

    result = {}
    locallm.train.training.load_stage_model = load_marked
    locallm.train.training.run_trainer = run_marked
    settings = json.loads(args.settings)
    work = Path(args.work)
    train_sft(str(work / "tokenized"), args.base, settings, str(work / "sft"),
              str(work / "checkpoints"), 0, args.threads)  # fmt: skip
    peaks = sampler.stop()
    mib = 1024 * 1024 / MB  # KiB figures to MB
    result["peak_mb"] = memory_now()["hwm"] * mib / 1024
    for phase, figures in peaks.items():
        result[f"{phase}_mb"] = figures["rss"] * mib / 1024
        result[f"{phase}_file_mb"] = figures["file"] * mib / 1024
    print(json.dumps(result))


def write_tokenized(base: str, settings: dict, batch: int, seq: int, steps: int, work: Path):
    """Packed sequences of `seq` random tokens, `batch` per step, saved as tokenize saves them."""
    import torch
    from datasets import Dataset, DatasetDict
    from locallm.model.loading import load_tokenizer

    tokenizer = load_tokenizer(base, settings)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, len(tokenizer), (batch * steps, seq), generator=generator).tolist()
    rows = {"input_ids": ids, "labels": ids}
    if settings["packing"]:
        rows["seq_lengths"] = [[seq]] * len(ids)
    DatasetDict({"train": Dataset.from_dict(rows)}).save_to_disk(str(work / "tokenized"))
    tokenizer.save_pretrained(work / "tokenized" / "tokenizer")


def run_settings(config: dict, variant: str, method: str, batch: int, seq: int, steps: int):
    """The variant's training settings for one measured run: `steps` steps, saved at the last."""
    settings = {**variant_settings(config, variant), "cache_dir": None}
    settings.update(method=method, per_device_batch_size=batch, max_length=seq, max_steps=steps,
                    save_steps=steps, logging_steps=1, warmup_steps=0)  # fmt: skip
    return settings


def measure(args, config: dict, method: str, batch: int, seq: int) -> dict:
    """Run one SFT job in a child process; its peaks beside the estimate and its terms (MB)."""
    settings = run_settings(config, args.variant, method, batch, seq, args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_tokenized(args.base, settings, batch, seq, args.steps, work)
        command = [sys.executable, __file__, "--child", "--base", args.base, "--work", tmp,
                   "--settings", json.dumps(settings), "--threads", str(args.threads)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"SFT child ({method}, {batch}x{seq}) failed:\n{done.stderr[-3000:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    estimate = estimate_host_training(
        shape_from_config(read_model_config(args.base)),
        method,
        seq_len=seq,
        batch_size=batch,
        lora_r=settings["lora_r"],
        lora_dropout=settings["lora_dropout"] > 0,
        gradient_checkpointing=measured["gradient_checkpointing"],
    )
    row = {"method": method, "shape": f"{batch}x{seq}", "peak_mb": round(measured["peak_mb"])}
    row["checkpointing"] = measured["gradient_checkpointing"]
    row["estimate_mb"] = round(estimate.total / MB)
    row["ratio"] = round(measured["peak_mb"] / (estimate.total / MB), 2)
    row["band"] = f"{BAND[0]}-{BAND[1]}"
    for phase in PHASES:
        row[f"{phase}_mb"] = round(measured.get(f"{phase}_mb", float("nan")))
        row[f"{phase}_file_mb"] = round(measured.get(f"{phase}_file_mb", float("nan")))
    row.update({f"est_{k}_mb": round(v / MB) for k, v in estimate.terms().items()})
    row["est_phase"] = estimate.peak_phase
    return row


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "smollm2.yaml"))
    parser.add_argument("--variant", default="qlora_r16")
    parser.add_argument("--base", default="results/smollm2/models/converted/smollm2-135m-instruct")
    parser.add_argument("--shapes", nargs="+", default=["2x128", "4x256"], help="BATCHxSEQ")
    parser.add_argument("--methods", nargs="+", choices=["qlora", "lora", "full"],
                        default=["qlora", "lora", "full"])  # fmt: skip
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return pd.DataFrame()

    config = load_config(args.config)
    rows = []
    for shape in args.shapes:
        batch, seq = (int(n) for n in shape.lower().split("x"))
        for method in args.methods:
            rows.append(measure(args, config, method, batch, seq))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    print(
        f"{args.base}: SFT on the CPU, {args.steps} step(s), {args.threads} thread(s); peak RSS "
        f"(VmHWM) over locallm.model.memory's host-memory estimate, target band {BAND[0]}-{BAND[1]}"
    )
    print(table.to_markdown(index=False))
    return table


if __name__ == "__main__":
    main()
