"""SFT training throughput with and without packing, on the demo's SFT table and base.

    snakemake --cores 2 results/models/base results/sft_data/train.parquet   # once
    python benchmarks/sft_throughput.py --method full --steps 10

Prints real (non-padding) training tokens per second of wall time and per CPU second; on a shared
machine the CPU figure is the one to compare.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

from locallm.config import load_config, variant_settings  # noqa: E402
from locallm.tables import read_table, write_table  # noqa: E402
from locallm.tokenization import tokenize_splits  # noqa: E402
from locallm.training import train_sft  # noqa: E402


def measure(sft: Path, base: str, settings: dict, packing: bool, work: Path, threads: int) -> dict:
    """Tokenize with or without packing, train `max_steps` steps, return the run's figures."""
    settings = {**settings, "packing": packing}
    tokenized = work / f"tokenized_{packing}"
    tokenize_splits({"train": str(sft)}, base, settings, str(tokenized), str(work / "r.tsv"),
                    str(work / "r.png"))  # fmt: skip
    out = work / f"sft_{packing}"
    train_sft(str(tokenized), base, settings, str(out), str(work / f"ckpt_{packing}"), 0, threads)
    info = json.loads((out / "run_info.json").read_text())
    padded = settings["per_device_batch_size"] * info["steps"] * settings["max_length"]
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
        "real_token_share": round(info["tokens"] / padded, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--variant", default="full")
    parser.add_argument("--method", choices=["qlora", "lora", "full"], default=None)
    parser.add_argument("--base", default="results/models/base")
    parser.add_argument("--sft", default="results/sft_data/train.parquet")
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

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
            measure(work / "sft.parquet", args.base, settings, packing, work, args.threads)
            for packing in (True, False)
        ]
    table = pd.DataFrame(rows)
    table["ratio_cpu"] = (table.tokens_per_cpu_s / table.tokens_per_cpu_s.iloc[-1]).round(2)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
