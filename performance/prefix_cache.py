"""Shared-prefix caching in classify: the same prompts scored whole and with the prefix run once.

    python performance/prefix_cache.py [--model FOLDER] [--prompts 64] [--fewshot-k 0 2]

The task is the config's; passages are demo-corpus (SOTU) paragraphs cut to `--chars`. Each
few-shot setting draws k solved train passages per label (the same for every prompt, as the infer
job does). Without `--model`, the builtin:tiny shape with random weights (speed does not depend on
the weights); `--model` takes any save_pretrained folder, e.g. results/models/converted/
smollm2-135m-instruct. For each setting it prints rows/s both ways, their ratio (wall and CPU
seconds), the bound on it (prompt tokens run whole / tokens run with the prefix cached) and the
share of equal labels. On a
loaded machine use `--threads 1`: with more threads than free cores, OpenMP's spinning threads make
every forward pass cost seconds whatever its size, which hides any saving.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "performance"))

from inference_speed import sotu_examples  # noqa: E402
from locallm.config import load_config  # noqa: E402
from locallm.infer.predict import render_prompts  # noqa: E402
from locallm.infer.scoring import (  # noqa: E402
    label_continuations,
    label_log_likelihoods,
    shared_prefix,
)
from locallm.task.prompts import build_prompt  # noqa: E402


def cpu_flags() -> str:
    """The CPU's vector extensions that matter for matrix multiplies (Linux /proc/cpuinfo)."""
    try:
        flags = next(
            line.split(":", 1)[1].split()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        )
    except (OSError, StopIteration):
        return "unknown"
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return " ".join(f for f in wanted if f in flags) or "none of avx2/avx512/amx"


def load_model(folder: str | None, task: dict, tiny: dict, texts: list[str], seed: int):
    if folder:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        if tokenizer.pad_token is None or tokenizer.pad_token == tokenizer.eos_token:
            tokenizer.pad_token = tokenizer.unk_token or tokenizer.bos_token
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        return model.eval(), tokenizer, folder
    from locallm.model.tiny import tiny_model, train_tokenizer

    tokenizer = train_tokenizer(texts, tiny["vocab_size"])
    return tiny_model(tokenizer, tiny, seed).eval(), tokenizer, "builtin:tiny shape, random"


def compare(model, tokenizer, prompts, continuations, batch_tokens: int) -> dict:
    """Rows/s whole and cached, the ratio, its bound, label agreement."""
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    prefix = len(shared_prefix(ids))
    total = sum(len(i) for i in ids)
    runs = {}
    for cached in (False, True):
        wall, cpu = time.perf_counter(), time.process_time()
        scores, _ = label_log_likelihoods(
            model, tokenizer, prompts, continuations, batch_tokens=batch_tokens,
            prefix_cache=cached,
        )  # fmt: skip
        runs[cached] = (scores.argmax(1), time.perf_counter() - wall, time.process_time() - cpu)
    return {
        "prompt_tokens": total / len(ids),
        "prefix_tokens": prefix,
        "whole_rows_s": len(ids) / runs[False][1],
        "cached_rows_s": len(ids) / runs[True][1],
        "ratio": runs[False][1] / runs[True][1],
        # CPU seconds: on a machine shared with other jobs, wall time also measures them.
        "cpu_ratio": runs[False][2] / runs[True][2],
        "bound": total / (total - prefix * (len(ids) - 1)),
        "agreement": float((runs[False][0] == runs[True][0]).mean()),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--model", default=None)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--fewshot-k", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--chars", type=int, default=400)
    parser.add_argument("--batch-tokens", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    task = config["task"]
    train, test = sotu_examples(task, 200, args.prompts, args.seed)
    for row in train + test:
        row["text"] = row["text"][: args.chars]
    model, tokenizer, source = load_model(
        args.model, task, config["model"]["tiny"], [r["text"] for r in train], args.seed
    )
    rng = np.random.default_rng(args.seed)
    print(f"\n### Prefix caching, classify: {len(test)} prompts of {args.chars} characters, "
          f"{source}, {args.threads} threads; CPU: {cpu_flags()}\n")  # fmt: skip
    print("| few-shot k | prompt tokens | prefix tokens | whole rows/s | cached rows/s | ratio "
          "| CPU-s ratio | bound | equal labels |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    results = []
    for k in args.fewshot_k:
        examples = []
        for label in task["labels"]:
            pool = [r for r in train if r[task["label_column"]] == label]
            examples += [pool[i] for i in rng.permutation(len(pool))[:k]]
        conversations = [build_prompt(r, task, examples) for r in test]
        prompts = render_prompts(tokenizer, conversations)
        continuations = label_continuations(tokenizer, conversations[0], task["labels"])
        row = {"k": k, **compare(model, tokenizer, prompts, continuations, args.batch_tokens)}
        results.append(row)
        print(f"| {k} | {row['prompt_tokens']:.0f} | {row['prefix_tokens']} | "
              f"{row['whole_rows_s']:.2f} | {row['cached_rows_s']:.2f} | {row['ratio']:.2f}x | "
              f"{row['cpu_ratio']:.2f}x | "
              f"{row['bound']:.2f}x | {row['agreement']:.1%} |")  # fmt: skip
    return results


if __name__ == "__main__":
    main()
