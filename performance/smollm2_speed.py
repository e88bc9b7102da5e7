"""SmolLM2 on the CPU: forward and training-step speed, float32 against bfloat16 autocast.

    snakemake --cores 2 --configfile config/smollm2.yaml \
        results/models/converted/smollm2-135m-instruct   # once
    python performance/smollm2_speed.py --threads 2 --batch 4 --seq 128 --steps 2

1. Forward (what classify does): a batch of `--batch` x `--seq` tokens, one forward pass without
   gradients, in float32 and under torch.autocast("cpu", dtype=torch.bfloat16).
2. One training step (forward + backward + AdamW step) per method, loaded as the workflow loads it
   (locallm.models.load_stage_model, so QLoRA has real 4-bit NF4 layers from bitsandbytes, and
   locallm.training.lora_config for the adapters: r 16, all-linear), float32 and bf16 autocast.

The tokens are drawn at random from the vocabulary with a fixed seed: speed does not depend on them.
Prints tokens per second of wall time and per CPU second (time.process_time, all threads); on a
shared machine the CPU figure is the one to compare. The ratio column is bf16 over float32 (per CPU
second); its bound is what bf16 can win at most if every matmul ran at twice the float32 rate
(half the bytes moved), 2.0.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]

from locallm.config import load_config, variant_settings  # noqa: E402
from locallm.models import load_stage_model  # noqa: E402
from locallm.training import lora_config  # noqa: E402

DTYPES = ("float32", "bfloat16")
BF16_BOUND = 2.0


def method_settings(config: dict, method: str) -> dict:
    """The demo config's training settings for `method`, with LoRA r 16 on all linear layers."""
    settings = {**variant_settings(config, "qlora_r8"), "cache_dir": None}
    settings.update(
        method=method, lora_r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear"
    )
    return settings


def load(base: str, settings: dict):
    """The model of a training run, as the workflow builds it: 4-bit base + adapters for QLoRA."""
    model, _ = load_stage_model(settings, base, None, trainable=True)
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


def timed(run, steps: int, warmup: int) -> tuple[float, float]:
    """(wall s, CPU s) of `steps` calls of `run`, after `warmup` untimed ones (first-call costs:
    oneDNN kernels, optimizer states, allocator growth)."""
    for _ in range(warmup):
        run()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        run()
    return time.perf_counter() - wall, time.process_time() - cpu


def train_step(model, optimizer, ids: torch.Tensor, dtype: str):
    def run():
        with autocast(dtype):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return run


def forward(model, ids: torch.Tensor, dtype: str):
    def run():
        with torch.no_grad(), autocast(dtype):
            model(input_ids=ids)

    return run


def row(what: str, dtype: str, tokens: int, wall: float, cpu: float) -> dict:
    return {
        "measure": what,
        "dtype": dtype,
        "tokens": tokens,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "tokens_per_s": round(tokens / wall, 1),
        "tokens_per_cpu_s": round(tokens / cpu, 1),
    }


def speed_rows(base: str, config: dict, args) -> list[dict]:
    rows = []
    settings = {**method_settings(config, "full"), "gradient_checkpointing": False}
    model, _ = load_stage_model(settings, base, None)
    ids = batch_ids(model, args.batch, args.seq)
    for dtype in DTYPES:
        wall, cpu = timed(forward(model, ids, dtype), args.steps, args.warmup)
        rows.append(row("forward (classify)", dtype, ids.numel() * args.steps, wall, cpu))
    del model
    for method in args.methods:
        model = load(base, method_settings(config, method))
        model.train()
        ids = batch_ids(model, args.batch, args.seq)
        trained = [p for p in model.parameters() if p.requires_grad]
        for dtype in DTYPES:
            optimizer = torch.optim.AdamW(trained, lr=1e-5)
            wall, cpu = timed(train_step(model, optimizer, ids, dtype), args.steps, args.warmup)
            rows.append(row(f"{method} step", dtype, ids.numel() * args.steps, wall, cpu))
        del model
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--base", default="results/models/converted/smollm2-135m-instruct")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before each timing")
    parser.add_argument("--methods", nargs="+", choices=["qlora", "lora", "full"],
                        default=["qlora", "lora", "full"])  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = load_config(args.config)
    table = pd.DataFrame(speed_rows(args.base, config, args))
    float32 = table[table.dtype == "float32"].set_index("measure").tokens_per_cpu_s
    table["ratio_cpu"] = (table.tokens_per_cpu_s / table.measure.map(float32)).round(2)
    table["bound"] = BF16_BOUND
    print(
        f"{args.base}: batch {args.batch} x {args.seq} tokens, {args.steps} step(s), "
        f"{args.threads} thread(s); ratio_cpu: bf16 autocast over float32, per CPU second"
    )
    print(table.to_markdown(index=False))
    return {"speed": table}


if __name__ == "__main__":
    main()
