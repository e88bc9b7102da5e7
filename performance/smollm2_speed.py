"""SmolLM2 on the CPU: training-step speed side by side (float32 against bfloat16 autocast per
method, gradient checkpointing, packed against padded batches) and the forward pass. Peak memory:
performance/smollm2_memory.py.

    snakemake --cores 2 --configfile config/smollm2.yaml \
        results/smollm2/models/converted/smollm2-135m-instruct \
        results/smollm2/sft_data/train.parquet   # once
    python performance/smollm2_speed.py --threads 2 --batch 4 --seq 128 --steps 4

Each comparison runs its variants in turn, A B A B ..., `--steps` timed calls each after `--warmup`
untimed ones (first-call costs: oneDNN kernels, optimizer states, allocator growth), so a change in
the machine's load hits every variant alike; the load average is printed beside each comparison.

1. Forward (what classify does): a batch of `--batch` x `--seq` random tokens without gradients.
2. One training step (forward + backward + AdamW) per method, loaded as the workflow loads it
   (locallm.model.loading.load_stage_model: QLoRA has real 4-bit NF4 layers from bitsandbytes;
   locallm.train.training.lora_config: r 16, all-linear): float32 against bf16 autocast (what
   `training.precision: bfloat16` runs; for QLoRA its 4-bit matmuls also in bf16, and as a third
   variant autocast with float32 4-bit matmuls).
3. Gradient checkpointing on against off (LoRA, float32).
4. Packing: steps on the workflow's batches of the SFT table (`--sft`, tokenized with the base's
   tokenizer at `--max-length`): padded examples against packed sequences, `--batch` rows a step.

Prints tokens (real, non-padding ones) per second of wall time and per CPU second
(time.process_time, all threads); on a shared machine the CPU figure is the one to compare. The
ratio is each variant over the comparison's first, per CPU second. Bounds: bf16 can win at most 2.0
(every matmul at twice the float32 rate); switching checkpointing off at most 4/3 (it saves one
forward of a step's three passes' worth); packing at most the real-token share of the packed
batches' token slots over that of the padded ones.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]

from locallm.config import load_config, variant_settings  # noqa: E402
from locallm.model.loading import load_stage_model, load_tokenizer  # noqa: E402
from locallm.tables import read_table  # noqa: E402
from locallm.train.tokenization import Collator, pack, tokenize_table  # noqa: E402
from locallm.train.training import lora_config  # noqa: E402

DTYPES = ("float32", "bfloat16")
BF16_BOUND = 2.0
CHECKPOINTING_BOUND = round(4 / 3, 2)


def method_settings(config: dict, method: str) -> dict:
    """The demo config's training settings for `method`, with LoRA r 16 on all linear layers."""
    settings = {**variant_settings(config, "qlora_r8"), "cache_dir": None}
    settings.update(
        method=method, lora_r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear"
    )
    return settings


def load(base: str, settings: dict, precision: str = "float32"):
    """The model of a training run, as the workflow builds it: 4-bit base + adapters for QLoRA."""
    model, _ = load_stage_model(settings, base, None, trainable=True, precision=precision)
    if settings["method"] != "full":
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(settings))
    if settings["gradient_checkpointing"] and settings["method"] != "qlora":
        model.gradient_checkpointing_enable()  # prepare_model_for_kbit_training did it for QLoRA
    model.config.use_cache = False
    return model


def batch_ids(model, batch: int, seq: int) -> torch.Tensor:
    vocab = model.get_input_embeddings().num_embeddings
    return torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(0))


def autocast(dtype: str):
    if dtype == "bfloat16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


def interleaved(runs: dict[str, Callable[[], int]], steps: int, warmup: int) -> dict[str, list]:
    """{name: [wall s, CPU s, tokens]} of `steps` calls of each run taken in turn (A B A B ...),
    after `warmup` untimed calls of each; a run returns the tokens it processed."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    totals = {name: [0.0, 0.0, 0] for name in runs}
    for _ in range(steps):
        for name, run in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            tokens = run()
            totals[name][0] += time.perf_counter() - wall
            totals[name][1] += time.process_time() - cpu
            totals[name][2] += tokens
    return totals


def train_step(model, optimizer, ids: torch.Tensor, dtype: str) -> Callable[[], int]:
    """One optimizer step on `ids` (labels = ids); returns its tokens."""

    def run() -> int:
        with autocast(dtype):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return ids.numel()

    return run


def forward(model, ids: torch.Tensor, dtype: str) -> Callable[[], int]:
    def run() -> int:
        with torch.no_grad(), autocast(dtype):
            model(input_ids=ids)
        return ids.numel()

    return run


def rows_of(comparison: str, totals: dict[str, list], bound: float, load1: float) -> list[dict]:
    """Table rows of one comparison; ratio_cpu is each variant over the first, per CPU second."""
    rows = []
    for variant, (wall, cpu, tokens) in totals.items():
        rows.append(
            {
                "comparison": comparison,
                "variant": variant,
                "tokens": tokens,
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu, 2),
                "tokens_per_s": round(tokens / wall, 1),
                "tokens_per_cpu_s": round(tokens / cpu, 1),
            }
        )
    first = rows[0]["tokens_per_cpu_s"]
    for row in rows:
        row["ratio_cpu"] = round(row["tokens_per_cpu_s"] / first, 2)
        row["bound"] = bound if row is not rows[0] else 1.0
        row["load1"] = load1
    return rows


def optimizer_of(model):
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)


def sft_batches(base: str, settings: dict, sft: str, args) -> dict[str, list[dict]]:
    """The workflow's padded and packed batches of the SFT table, `--batch` rows each, as many
    as the timed and warm-up steps take (cycling through the table when it is short)."""
    if not Path(sft).exists():
        raise FileNotFoundError(
            f"--sft {sft}: no SFT table there; build it with snakemake (see this script's "
            "docstring) or point --sft at a train.parquet of results/smollm2/sft_data/"
        )
    tokenizer = load_tokenizer(base, settings)
    examples = tokenize_table(read_table(sft), tokenizer, args.max_length)
    # The trainer samples examples at random; packed sequences come in best-fit order.
    examples = examples.iloc[np.random.default_rng(0).permutation(len(examples))]
    padded = examples[["input_ids", "labels"]].to_dict("records")
    packed = list(pack(examples, args.max_length))
    collate = Collator(tokenizer.pad_token_id)
    needed = args.batch * (args.steps + args.warmup)
    batches = {}
    for name, rows in (("padded", padded), ("packed", packed)):
        rows = [rows[i % len(rows)] for i in range(needed)]
        chunks = [rows[i : i + args.batch] for i in range(0, needed, args.batch)]
        batches[name] = []
        for chunk in chunks:
            batch = collate(chunk)
            batch.pop("use_cache", None)
            batch["real"] = sum(len(r["input_ids"]) for r in chunk)
            batches[name].append(batch)
    return batches


def cycling_step(model, optimizer, batches: list[dict]) -> Callable[[], int]:
    """A training step on the next batch of `batches` each call; returns its real tokens."""
    position = iter(range(10**9))

    def run() -> int:
        batch = dict(batches[next(position) % len(batches)])
        real = batch.pop("real")
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return real

    return run


def packing_rows(model, batches: dict[str, list[dict]], args) -> list[dict]:
    """Padded against packed batches, real tokens per CPU second, with packing's bound."""
    shares = {
        name: sum(b["real"] for b in group) / sum(b["input_ids"].numel() for b in group)
        for name, group in batches.items()
    }
    optimizer = optimizer_of(model)
    runs = {name: cycling_step(model, optimizer, group) for name, group in batches.items()}
    totals = interleaved(runs, args.steps, args.warmup)
    rows = rows_of("packing", totals, round(shares["packed"] / shares["padded"], 2), load1())
    for row in rows:
        row["real_token_share"] = round(shares[row["variant"]], 3)
    return rows


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def shown(rows: list[dict]) -> list[dict]:
    """Print a comparison's rows as soon as it is done (a long run on a loaded machine)."""
    print(pd.DataFrame(rows).to_markdown(index=False), flush=True)
    return rows


def speed_rows(base: str, config: dict, args) -> list[dict]:
    rows = []
    if not args.training_only:
        settings = {**method_settings(config, "full"), "gradient_checkpointing": False}
        model, _ = load_stage_model(settings, base, None)
        ids = batch_ids(model, args.batch, args.seq)
        runs = {dtype: forward(model, ids, dtype) for dtype in DTYPES}
        totals = interleaved(runs, args.steps, args.warmup)
        rows += shown(rows_of("forward (classify)", totals, BF16_BOUND, load1()))
        del model
    for method in args.methods:
        settings = {**method_settings(config, method), "gradient_checkpointing": False}
        model = load(base, settings)
        model.train()
        ids = batch_ids(model, args.batch, args.seq)
        optimizer = optimizer_of(model)
        runs = {dtype: train_step(model, optimizer, ids, dtype) for dtype in DTYPES}
        if method == "qlora":
            # bf16 4-bit matmuls need their own model; the float32 one under autocast beside it.
            runs["bfloat16, 4-bit float32"] = runs.pop("bfloat16")
            model_bf16 = load(base, settings, precision="bfloat16")
            model_bf16.train()
            runs["bfloat16"] = train_step(model_bf16, optimizer_of(model_bf16), ids, "bfloat16")
        totals = interleaved(runs, args.steps, args.warmup)
        rows += shown(rows_of(f"{method} step", totals, BF16_BOUND, load1()))
        if method == "lora":
            rows += shown(checkpointing_rows(model, optimizer, ids, args))
        if method == args.packing_method:
            batches = sft_batches(base, settings, args.sft, args)
            rows += shown(packing_rows(model, batches, args))
        del model
    return rows


def checkpointing_rows(model, optimizer, ids: torch.Tensor, args) -> list[dict]:
    """Gradient checkpointing on (the baseline) against off, float32."""
    step = train_step(model, optimizer, ids, "float32")

    def on() -> int:
        model.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}
        )
        return step()

    def off() -> int:
        model.activation_checkpointing_disable()
        return step()

    totals = interleaved(
        {"checkpointing on": on, "checkpointing off": off}, args.steps, args.warmup
    )
    model.activation_checkpointing_disable()
    return rows_of("lora step, checkpointing", totals, CHECKPOINTING_BOUND, load1())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--base", default="results/smollm2/models/converted/smollm2-135m-instruct")
    parser.add_argument("--sft", default="results/smollm2/sft_data/train.parquet")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--max-length", type=int, default=256, help="of the packed sequences")
    parser.add_argument("--steps", type=int, default=4, help="timed calls of each variant")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls of each variant")
    parser.add_argument("--methods", nargs="+", choices=["qlora", "lora", "full"],
                        default=["qlora", "lora", "full"])  # fmt: skip
    parser.add_argument("--packing-method", choices=["qlora", "lora", "full"], default="qlora")
    parser.add_argument("--training-only", action="store_true", help="skip the forward pass")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    config = load_config(args.config)
    load_before = os.getloadavg()
    table = pd.DataFrame(speed_rows(args.base, config, args))
    print()
    print(
        f"{args.base}: batch {args.batch} x {args.seq} random tokens (packing: {args.batch} rows "
        f"of {args.sft}, max length {args.max_length}), {args.steps} timed step(s) of each "
        f"variant in turn after {args.warmup} warm-up, {args.threads} thread(s); load average "
        f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after; ratio_cpu: over the "
        "comparison's first variant, per CPU second"
    )
    print(table.to_markdown(index=False))
    return {"speed": table}
