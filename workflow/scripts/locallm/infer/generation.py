"""Generated answers: batched generation, tolerant label parsing, self-consistency votes."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import torch

from locallm.infer.batching import Progress, left_pad, model_device, pad_token_id, token_batches
from locallm.logs import get_logger, warn

log = get_logger(__name__)

UNMATCHED = (
    None  # parsed_label of an output that names no label; the row stays, flagged `unmatched`
)


@torch.inference_mode()
def generate_texts(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    batch_size: int,
    max_new_tokens: int,
    batch_tokens: int | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    num_samples: int = 1,
    seed: int = 0,
    progress: Progress | None = None,
    cache_implementation: str | None = "static",
) -> list[list[str]]:
    """`num_samples` generated answers per prompt, in input order (batches run longest first).

    A batch holds at most `batch_size` prompts and, given `batch_tokens`, at most that many tokens
    once generation is done (sequences x (prompt width + max_new_tokens)).
    `cache_implementation`: the key/value cache of `model.generate`. "static" (preallocated for the
    batch) was faster than the default dynamic cache on the CPU with identical greedy outputs
    (performance/inference_speed.py); None gives transformers' default.
    """
    pad_id = pad_token_id(tokenizer)
    device = model_device(model)
    torch.manual_seed(seed)
    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    sampling = {"temperature": temperature, "top_p": top_p} if do_sample else {}
    cache = {"cache_implementation": cache_implementation} if cache_implementation else {}
    if num_samples > 1 and not do_sample:
        warn(log, f"num_samples={num_samples} with greedy decoding gives identical samples")
    # Each prompt becomes num_samples sequences of its padded width plus the new tokens.
    budget = max(1, batch_tokens // num_samples) if batch_tokens is not None else None
    lengths = [len(p) for p in prompt_ids]
    batches = token_batches(lengths, budget, extra_tokens=max_new_tokens, max_rows=batch_size)
    results: list[list[str]] = [[] for _ in prompts]
    for batch in batches:
        ids, mask = left_pad([prompt_ids[i] for i in batch], pad_id)
        out = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            num_return_sequences=num_samples,
            pad_token_id=pad_id,
            eos_token_id=tokenizer.eos_token_id,
            **sampling,
            **cache,
        )
        texts = tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)
        for k, i in enumerate(batch):
            results[i] = [t.strip() for t in texts[k * num_samples : (k + 1) * num_samples]]
        if progress:
            progress.advance(len(batch))
    return results


_LEADING = re.compile(
    r"^(?:(?:the\s+)?(?:final\s+)?(?:answer|label|prediction|party|class|category)"
    r"(?:\s+(?:is|would\s+be))?\s*[:\-]?\s*|it\s+is\s+|it's\s+|answer\s*:\s*)",
    re.IGNORECASE,
)
_EDGE_PUNCT = string.punctuation + string.whitespace + "“”‘’«»"


def normalise(text: str) -> str:
    """Case-folded, whitespace-collapsed text (the form answers are compared in)."""
    return " ".join(text.casefold().split())


def parse_label(output: str, labels: Sequence[str]) -> str | None:
    """The label an output names, tolerating case, whitespace, punctuation and a leading phrase.

    The answer may be the label alone or a sentence naming exactly one label as a whole word
    (hyphens bind, so "Democratic-Republican" does not name "Democratic"). An answer naming no
    label or several ("Democratic or Republican") is unmatched: None.
    """
    text = normalise(output).strip(_EDGE_PUNCT)
    text = _LEADING.sub("", text).strip(_EDGE_PUNCT)
    by_norm = {normalise(label): label for label in labels}
    if text in by_norm:
        return by_norm[text]
    found = {
        by_norm[norm]
        for norm in by_norm
        if re.search(rf"(?<![\w-]){re.escape(norm)}(?![\w-])", text)
    }
    return found.pop() if len(found) == 1 else UNMATCHED


def majority_vote(parsed: Sequence[str | None]) -> tuple[str | None, float]:
    """The most frequent parsed label among samples and its vote share (ties: earliest sample wins).

    Unmatched samples count in the denominator: a label named by 2 of 5 samples has share 0.4.
    """
    counts = Counter(p for p in parsed if p is not None)
    if not counts:
        return None, 0.0
    best = max(counts.values())
    winner = next(p for p in parsed if p is not None and counts[p] == best)
    return winner, best / len(parsed)
