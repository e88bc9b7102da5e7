"""builtin:tiny's pretraining in float32 and under bfloat16 autocast, side by side in one process.

    python performance/bootstrap_speed.py --train results/demo/splits/train.parquet [--steps 150]
        [--threads 2] [--config config/config.yaml]

The demo config's `model.tiny` shape and steps, on the train split's text, through the workflow's
own `locallm.model.tiny.pretrain` (same seed, same windows); the bfloat16 run wraps it in
`torch.autocast("cpu", dtype=torch.bfloat16)`. Per row: CPU and wall seconds, tokens per CPU second,
the ratio over float32 and its bound of 2 (what halving the bytes of every matmul could win), and
the mean loss of the last 10 steps (does bfloat16 learn as much?).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import pandas as pd
import torch
from locallm.config import load_config  # noqa: E402
from locallm.model.tiny import pretrain, tiny_model, token_stream, train_tokenizer  # noqa: E402
from locallm.tables import read_table  # noqa: E402


def timed_pretraining(stream, tokenizer, tiny: dict, seed: int, dtype: str) -> dict:
    """CPU and wall seconds and the final loss of one pretraining run in `dtype`."""
    model = tiny_model(tokenizer, tiny, seed)
    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16)
        if dtype == "bfloat16"
        else contextlib.nullcontext()
    )
    cpu, wall = time.process_time(), time.perf_counter()
    with autocast:
        history = pretrain(model, stream, tiny, seed)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    seq = min(tiny["pretrain_seq_length"], tiny["context_length"], len(stream) - 1)
    tokens = len(history) * tiny["batch_size"] * seq
    return {"dtype": dtype, "steps": len(history), "tokens": tokens, "cpu_s": cpu,
            "wall_s": wall, "tokens_per_cpu_s": tokens / cpu,
            "final_loss": history["loss"].tail(10).mean()}  # fmt: skip


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True, help="the train split (Parquet)")
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--steps", type=int, help="pretraining steps (default: the config's)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    tiny = dict(config["model"]["tiny"])
    if args.steps is not None:
        tiny["pretrain_steps"] = args.steps
    torch.set_num_threads(args.threads)
    texts = read_table(args.train, columns=["text"])["text"].tolist()
    tokenizer = train_tokenizer(texts, tiny["vocab_size"])
    stream = token_stream(texts, tokenizer)
    rows = [timed_pretraining(stream, tokenizer, tiny, config["seed"], dtype)
            for dtype in ("float32", "bfloat16")]  # fmt: skip
    table = pd.DataFrame(rows)
    table["ratio_cpu"] = table["tokens_per_cpu_s"] / table["tokens_per_cpu_s"].iloc[0]
    table["bound"] = 2.0
    print(f"builtin:tiny pretraining, {args.threads} threads, {len(stream):,} train tokens")
    print(table.to_markdown(index=False, floatfmt=".3g"))
    return table


if __name__ == "__main__":
    main()
