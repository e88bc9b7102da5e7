"""Turn prompt/completion tables into training sequences: chat template, loss mask, packing.

Each example becomes `input_ids` and `labels` (-100 on every prompt token, so the loss is on the
answer only); the answer ends with EOS; a prompt too long for `max_length` has its text cut. With
packing, examples are packed into sequences of `max_length` (best-fit decreasing) and `seq_lengths`
records where each one starts, so the collator gives position ids that restart per example and the
model does not attend across them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from locallm.logs import get_logger, warn
from locallm.tables import atomic_dir, read_table, save_figure, write_tsv
from locallm.task.formats import apply_prompt_format

log = get_logger("tokenization")

IGNORE = -100


def chat_ids(tokenizer, messages: list[dict], *, add_generation_prompt: bool = False) -> list[int]:
    """Token ids of `messages` rendered by the tokenizer's chat template."""
    rendered = tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
    )
    return tokenizer(rendered, add_special_tokens=False)["input_ids"]


def fit_prompt(prompt: list[dict], tokenizer, budget: int) -> tuple[list[dict], bool]:
    """The prompt with its last message's text cut at the end so that it renders to at most
    `budget` tokens, and whether it was cut.

    Cutting the text, not the token sequence, keeps the instruction before the text, the chat
    template's markers and the answer: a sequence cut at `max_length` would lose the answer.
    """
    excess = len(chat_ids(tokenizer, prompt, add_generation_prompt=True)) - budget
    if excess <= 0:
        return prompt, False
    last = prompt[-1]
    content_ids = tokenizer(last["content"], add_special_tokens=False)["input_ids"]
    # Tokens can merge differently across the cut; a little slack settles it.
    for slack in (0, 2, 8, 32):
        keep = max(0, len(content_ids) - excess - slack)
        cut = [*prompt[:-1], {**last, "content": tokenizer.decode(content_ids[:keep])}]
        if len(chat_ids(tokenizer, cut, add_generation_prompt=True)) <= budget:
            return cut, True
    raise ValueError(
        f"the prompt template and answer alone need more than {budget} tokens; "
        "raise training.max_length"
    )


def tokenize_example(
    prompt: list[dict], completion: list[dict], tokenizer, max_length: int | None = None
) -> dict[str, Any]:
    """`input_ids` of prompt + completion, `labels` that keep only the completion's tokens, the
    untruncated `length`, and whether the prompt's text was cut to fit `max_length`.

    The completion ends with EOS even when the chat template does not close the turn with it.
    """
    example = _tokenize_pair(prompt, completion, tokenizer)
    length, truncated = len(example["input_ids"]), False
    if max_length is not None and length > max_length:
        answer = length - example["labels"].count(IGNORE)
        prompt, truncated = fit_prompt(prompt, tokenizer, max_length - answer)
        example = _tokenize_pair(prompt, completion, tokenizer)
    return {**example, "length": length, "truncated": truncated}


def _tokenize_pair(prompt: list[dict], completion: list[dict], tokenizer) -> dict[str, list[int]]:
    prompt_ids = chat_ids(tokenizer, prompt, add_generation_prompt=True)
    full_ids = chat_ids(tokenizer, [*prompt, *completion])
    if full_ids[: len(prompt_ids)] != prompt_ids:
        # The model would be trained on a context that differs from the one it sees at inference.
        raise ValueError(
            "the chat template renders the prompt differently alone and before the answer; "
            "set training.chat_template to a template whose generation prompt is a prefix"
        )
    if tokenizer.eos_token_id not in full_ids[len(prompt_ids) :]:
        full_ids.append(tokenizer.eos_token_id)
    labels = [IGNORE] * len(prompt_ids) + full_ids[len(prompt_ids) :]
    return {"input_ids": full_ids, "labels": labels}


def tokenize_table(sft: pd.DataFrame, tokenizer, max_length: int | None = None) -> pd.DataFrame:
    """Tokenize every row of an SFT table (prompts cut to fit `max_length`), beside its ids."""
    pairs = zip(sft["prompt"], sft["completion"], strict=True)
    rows = [tokenize_example(p, c, tokenizer, max_length) for p, c in pairs]
    return pd.DataFrame(
        {
            "doc_id": sft["doc_id"].to_numpy(),
            "group_id": sft["group_id"].to_numpy(),
            "input_ids": [r["input_ids"] for r in rows],
            "labels": [r["labels"] for r in rows],
            "length": [r["length"] for r in rows],
            "truncated": [r["truncated"] for r in rows],
        }
    )


def pack(examples: pd.DataFrame, max_length: int):
    """A datasets.Dataset of sequences of at most `max_length` tokens, examples packed whole."""
    from datasets import Dataset, Features, List, Value
    from trl import pack_dataset

    if examples.empty:
        # pack_dataset fails on no rows; an empty split (its fraction set to 0) is still valid.
        ints = {"input_ids": "int32", "labels": "int64", "seq_lengths": "int32"}
        features = Features({name: List(Value(kind)) for name, kind in ints.items()})
        return Dataset.from_dict({name: [] for name in ints}, features=features)
    dataset = Dataset.from_dict(
        {"input_ids": examples["input_ids"].tolist(), "labels": examples["labels"].tolist()}
    )
    return pack_dataset(dataset, max_length, strategy="bfd")


def position_ids(seq_lengths: list[int], total: int) -> list[int]:
    """Positions restarting at 0 for each packed example; the padding tail is its own segment."""
    positions = [p for n in seq_lengths for p in range(n)]
    return positions + list(range(total - len(positions)))


class Collator:
    """Pads a batch on the right; packed sequences get per-example position ids and no attention
    mask, so transformers builds a block-diagonal causal mask from the position ids.

    transformers looks for packed sequences only without a KV cache, hence `use_cache=False`.
    """

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(e["input_ids"]) for e in examples)
        batch = {
            "input_ids": torch.full((len(examples), width), self.pad_token_id, dtype=torch.long),
            "labels": torch.full((len(examples), width), IGNORE, dtype=torch.long),
        }
        packed = "seq_lengths" in examples[0]
        if packed:
            batch["position_ids"] = torch.zeros((len(examples), width), dtype=torch.long)
        else:
            batch["attention_mask"] = torch.zeros((len(examples), width), dtype=torch.long)
        for row, example in enumerate(examples):
            n = len(example["input_ids"])
            batch["input_ids"][row, :n] = torch.as_tensor(example["input_ids"])
            batch["labels"][row, :n] = torch.as_tensor(example["labels"])
            if packed:
                positions = position_ids(list(example["seq_lengths"]), width)
                batch["position_ids"][row] = torch.as_tensor(positions)
                # The first token of each example has nothing before it to be predicted from.
                starts = np.cumsum([0, *example["seq_lengths"][:-1]])
                batch["labels"][row, starts] = IGNORE
            else:
                batch["attention_mask"][row, :n] = 1
        if packed:
            batch["use_cache"] = False
        return batch


def length_report(
    examples: pd.DataFrame, split: str, max_length: int, context_length: int | None
) -> dict[str, Any]:
    """Token-length statistics of one split against `max_length` and the model's context length."""
    lengths = examples["length"]
    return {
        "split": split,
        "examples": len(examples),
        "mean": round(float(lengths.mean()), 1) if len(lengths) else 0.0,
        "median": float(lengths.median()) if len(lengths) else 0.0,
        "p95": float(lengths.quantile(0.95)) if len(lengths) else 0.0,
        "max": int(lengths.max()) if len(lengths) else 0,
        "max_length": max_length,
        "context_length": context_length,
        "truncated": int(examples["truncated"].sum()),
        "truncated_share": round(float(examples["truncated"].mean()), 4) if len(lengths) else 0.0,
    }


def plot_lengths(lengths: dict[str, pd.Series], max_length: int, context_length: int | None):
    """Histogram of example lengths per split, with max_length and the context length marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for split, values in lengths.items():
        ax.hist(values, bins=40, alpha=0.6, label=split)
    ax.axvline(max_length, color="black", linestyle="--", label=f"max_length {max_length}")
    if context_length:
        ax.axvline(context_length, color="red", linestyle=":", label=f"context {context_length}")
    ax.set_xlabel("tokens per example (prompt + answer)")
    ax.set_ylabel("examples")
    ax.legend()
    return fig


def check_truncation(report: pd.DataFrame, settings: dict[str, Any]) -> None:
    """Warn, or fail when training.truncation_error is set, if too many examples were truncated."""
    limit = settings["max_truncated_share"]
    over = report[report["truncated_share"] > limit]
    if over.empty:
        return
    message = "; ".join(
        f"{r.split}: {r.truncated} of {r.examples} examples ({r.truncated_share:.1%}) had their "
        f"text cut to fit training.max_length {r.max_length}"
        for r in over.itertuples()
    )
    message += f" (training.max_truncated_share {limit}); raise max_length or shorten the prompts"
    if settings["truncation_error"]:
        raise ValueError(message)
    warn(log, message)


def context_length_of(base_dir: str) -> int | None:
    """The model's context length from its config.json (no weights loaded)."""
    from transformers import AutoConfig

    from locallm.model.facts import context_length

    return context_length(AutoConfig.from_pretrained(base_dir))


def tokenize_splits(
    sft_tables: dict[str, str],
    base_path: str,
    settings: dict[str, Any],
    output: str,
    report: str,
    histogram: str,
) -> None:
    """Tokenize the SFT tables of each split into an Arrow DatasetDict saved with save_to_disk."""
    from datasets import Dataset, DatasetDict

    from locallm.model.loading import load_tokenizer, local_model_dir

    base_dir = local_model_dir(base_path, settings)
    tokenizer = load_tokenizer(base_dir, settings)
    # Saved with the data below, so SFT, DPO and their stages' inference render alike.
    kind = apply_prompt_format(tokenizer, settings)
    log.info("prompt format: %s (training.prompt_format %s)", kind, settings["prompt_format"])
    context_length = context_length_of(base_dir)
    max_length = settings["max_length"]
    if context_length and max_length > context_length:
        warn(log, f"training.max_length {max_length} exceeds the model's context {context_length}")
    datasets, rows, lengths = {}, [], {}
    for split, path in sft_tables.items():
        examples = tokenize_table(read_table(path), tokenizer, max_length)
        rows.append(length_report(examples, split, max_length, context_length))
        lengths[split] = examples["length"]
        if settings["packing"]:
            datasets[split] = pack(examples, max_length)
        else:
            datasets[split] = Dataset.from_pandas(
                examples[["doc_id", "group_id", "input_ids", "labels"]], preserve_index=False
            )
        log.info("%s: %d examples -> %d sequences", split, len(examples), len(datasets[split]))
    table = pd.DataFrame(rows)
    write_tsv(table, report)
    save_figure(plot_lengths(lengths, max_length, context_length), histogram)
    check_truncation(table, settings)
    with atomic_dir(output) as folder:
        DatasetDict(datasets).save_to_disk(str(folder))
        tokenizer.save_pretrained(Path(folder) / "tokenizer")
