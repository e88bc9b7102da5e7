"""SFT training throughput with and without packing, on the demo's SFT table and base.

    snakemake --cores 2 results/demo/models/base results/demo/sft_data/train.parquet   # once
    python performance/sft_throughput.py --method full --steps 10

Prints real (non-padding) training tokens per second of wall time and per CPU second; on a shared
machine the CPU figure is the one to compare. Beside packing's ratio it prints its bound: the share
of real tokens in the batches' token slots (padding included), packed over unpacked. If a step's
cost were proportional to its slots, packing could gain at most that.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]

import locallm.train.training  # noqa: E402
from locallm.config import load_config, variant_settings  # noqa: E402
from locallm.tables import read_table, write_table  # noqa: E402
from locallm.train.tokenization import Collator, tokenize_splits  # noqa: E402
from locallm.train.training import train_sft  # noqa: E402


class CountingCollator(Collator):
    """The workflow's collator, also counting token slots (padding included) and real tokens."""

    slots = 0
    real = 0

    def __call__(self, examples: list[dict]) -> dict:
        batch = super().__call__(examples)
        CountingCollator.slots += batch["input_ids"].numel()
        CountingCollator.real += sum(len(e["input_ids"]) for e in examples)
        return batch


# train_sft builds its collator by this name: the counting one sees every training batch.
locallm.train.training.Collator = CountingCollator


def measure(
    sft: Path, base: str, settings: dict, packing: bool, work: Path, threads: int, profile: bool
) -> dict:
    """Tokenize with or without packing, train `max_steps` steps, return the run's figures.

    `profile`: also print the operators that took the most CPU time (torch.profiler).
    """
    settings = {**settings, "packing": packing}
    tokenized = work / f"tokenized_{packing}"
    tokenize_splits({"train": str(sft)}, base, settings, str(tokenized), str(work / "r.tsv"),
                    str(work / "r.png"))  # fmt: skip
    out = work / f"sft_{packing}"
    CountingCollator.slots = CountingCollator.real = 0
    cpu = torch.profiler.ProfilerActivity.CPU
    profiler = torch.profiler.profile(activities=[cpu]) if profile else contextlib.nullcontext()
    with profiler:
        train_sft(str(tokenized), base, settings, str(out), str(work / f"ckpt_{packing}"), 0,
                  threads)  # fmt: skip
    if profile:
        print(f"\n{settings['method']}, packing {packing}: operators by self CPU time")
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    info = json.loads((out / "run_info.json").read_text())
    return {
        "packing": packing,
        "method": settings["method"],
        "steps": info["steps"],
        "sequences": info["train_sequences"],
        "tokens": info["tokens"],
        "wall_s": info["train_runtime_s"],
        "cpu_s": info["cpu_time_s"],
        "tokens_per_s": info["tokens_per_s"],
        "tokens_per_cpu_s": info["tokens_per_cpu_s"],
        "real_token_share": round(CountingCollator.real / max(CountingCollator.slots, 1), 3),
    }


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--variant", default="full")
    parser.add_argument("--method", choices=["qlora", "lora", "full"], default=None)
    parser.add_argument("--base", default="results/demo/models/base")
    parser.add_argument("--sft", default="results/demo/sft_data/train.parquet")
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="print the costliest operators")
    args = parser.parse_args(argv)

    config = load_config(args.config)
    settings = {**variant_settings(config, args.variant), "cache_dir": None}
    settings.update(max_steps=args.steps, save_steps=10_000, logging_steps=args.steps)
    if args.method:
        settings["method"] = args.method
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sample = read_table(args.sft).head(args.examples)
        write_table(sample, work / "sft.parquet")
        rows = [
            measure(
                work / "sft.parquet", args.base, settings, packing, work, args.threads, args.profile
            )
            for packing in (True, False)
        ]
    table = pd.DataFrame(rows)
    table["ratio_cpu"] = (table.tokens_per_cpu_s / table.tokens_per_cpu_s.iloc[-1]).round(2)
    table["bound"] = (table.real_token_share / table.real_token_share.iloc[-1]).round(2)
    print(table.to_string(index=False))
    packed = table.iloc[0]
    print(
        f"packing: {packed.ratio_cpu:.2f}x tokens per CPU second against its bound "
        f"{packed.bound:.2f}x (real-token share of the token slots, packed "
        f"{packed.real_token_share:.0%} / unpacked {table.real_token_share.iloc[-1]:.0%})"
    )
    return table


if __name__ == "__main__":
    main()
