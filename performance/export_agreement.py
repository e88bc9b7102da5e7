"""The exported GGUF against the model it was written from: labels, file size, time, per type.

    python performance/export_agreement.py --model FOLDER [--types f16 q8_0 q4_0] [--prompts 64]

For each weight type the folder (e.g. results/models/converted/smollm2-135m-instruct, or a merged
stage) is written as GGUF, read back by transformers (its own tokenizer too) and asked the config's
task on `--prompts` demo-corpus passages cut to `--chars`; printed: the share of equal labels (label
log-likelihoods, as the infer job scores), the largest log-likelihood difference, the file's size.
Without `--model`, the builtin:tiny shape trained for a few steps (a smoke run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "performance"))

from inference_speed import quick_model, sotu_examples  # noqa: E402
from locallm.config import load_config  # noqa: E402
from locallm.export.gguf_file import write_gguf  # noqa: E402
from locallm.export.job import label_agreement  # noqa: E402


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--model", default=None)
    parser.add_argument("--types", nargs="+", default=["f16", "q8_0", "q4_0"])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--chars", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    task, inference = config["task"], config["inference"]
    train, test = sotu_examples(task, 200, args.prompts, args.seed)
    for row in test:
        row["text"] = row["text"][: args.chars]
    rows = pd.DataFrame(test).assign(doc_id=lambda d: [f"d{i}" for i in range(len(d))])
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.model
        if folder is None:
            model, tokenizer = quick_model(task, config["model"]["tiny"], train, 5, args.seed)
            folder = str(Path(scratch) / "model")
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
        print(f"\n### Exported GGUF vs {folder}: {len(rows)} passages of {args.chars} characters, "
              f"task {task['label_column']} ({', '.join(task['labels'])})\n")  # fmt: skip
        print("| type | file MB | write s | equal labels | max abs log-lik diff "
              "| largest margin flipped | median margin |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        results = []
        for weight_type in args.types:
            gguf = Path(scratch) / f"model-{weight_type}.gguf"
            start = time.perf_counter()
            write_gguf(folder, gguf, weight_type, {"name": "benchmark"})
            seconds = time.perf_counter() - start
            agreement = label_agreement(folder, gguf, rows, task, [], inference)
            row = {
                "type": weight_type,
                "mb": gguf.stat().st_size / 1e6,
                "write_s": seconds,
                "agreement": float(agreement["same"].mean()),
                "max_diff": float(agreement["max_abs_loglik_diff"].max()),
                # The largest lead the model's label had where the file's label differs.
                "flip_margin": float(agreement.loc[~agreement["same"], "margin_model"].max())
                if (~agreement["same"]).any()
                else 0.0,
                "median_margin": float(agreement["margin_model"].median()),
            }
            results.append(row)
            print(f"| {weight_type} | {row['mb']:.1f} | {seconds:.1f} | {row['agreement']:.1%} "
                  f"| {row['max_diff']:.4f} | {row['flip_margin']:.4f} "
                  f"| {row['median_margin']:.4f} |")  # fmt: skip
    return results


if __name__ == "__main__":
    main()
