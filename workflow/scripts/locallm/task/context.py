"""Fit prompts into a model's context: cut document texts, never the instruction or an answer.

A prompt longer than the model's positions crashes some architectures (GPT-2's learned position
table) and silently degrades others. Only the `text` field of the rows is cut: the instruction,
metadata fields, the few-shot examples' answers and the room kept for the answer stay whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from locallm.task.prompts import build_prompt, prompt_columns

TEXT_FIELD = "text"  # the document text every corpus table carries (locallm.data.ingest)


def render_prompt(tokenizer, conversation: list[dict]) -> str:
    """The chat-templated prompt string that ends where the assistant's answer begins."""
    return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)


def prompt_tokens(tokenizer, conversation: list[dict]) -> int:
    """Tokens of the rendered prompt, counted as inference feeds it (no extra special tokens)."""
    rendered = render_prompt(tokenizer, conversation)
    return len(tokenizer(rendered, add_special_tokens=False)["input_ids"])


def equal_share_cap(lengths: Sequence[int], available: int) -> int:
    """The largest cap c with sum(min(length, c)) <= available: short texts stay whole.

    Texts longer than c are cut to c tokens each, so one long example cannot crowd out the
    document being asked about.
    """
    remaining, count = available, len(lengths)
    for length in sorted(lengths):
        if length * count > remaining:
            return max(remaining // count, 0)
        remaining -= length
        count -= 1
    return max(lengths, default=0)


def fit_prompt(
    row: Mapping[str, Any],
    task: dict[str, Any],
    examples: Sequence[Mapping[str, Any]],
    tokenizer,
    budget: int,
) -> tuple[list[dict], bool, int]:
    """The row's chat messages in at most `budget` tokens; whether a text was cut; its tokens.

    The budget is the context minus the tokens kept for the answer. The texts of the row and of
    the few-shot examples share what the fixed parts leave, cut from their ends.
    """
    records = [*examples, row]

    def render(texts: Sequence[str]) -> tuple[list[dict], int]:
        rows = [{**dict(r), TEXT_FIELD: t} for r, t in zip(records, texts, strict=True)]
        conversation = build_prompt(rows[-1], task, rows[:-1])
        return conversation, prompt_tokens(tokenizer, conversation)

    if TEXT_FIELD not in prompt_columns(task):
        conversation = build_prompt(row, task, examples)
        length = prompt_tokens(tokenizer, conversation)
        if length > budget:
            raise ValueError(
                f"row doc_id {row.get('doc_id')!r}: prompt of {length} tokens exceeds the "
                f"model's context less the answer ({budget} tokens), and task.prompt has no "
                f"{{{TEXT_FIELD}}} field to cut; shorten task.prompt or inference.fewshot_k"
            )
        return conversation, False, length
    texts = [str(r[TEXT_FIELD]) for r in records]
    conversation, length = render(texts)
    if length <= budget:
        return conversation, False, length
    _, fixed = render([""] * len(texts))
    if fixed >= budget:
        raise ValueError(
            f"row doc_id {row.get('doc_id')!r}: the prompt without any document text takes "
            f"{fixed} tokens, the model's context less the answer is {budget}: shorten "
            "task.prompt or task.system_prompt, or lower inference.fewshot_k"
        )
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    cap = equal_share_cap([len(i) for i in ids], budget - fixed)
    # Tokens merge differently across a cut and a join, so check the rendered length and retry.
    while cap >= 0:
        cut = [
            tokenizer.decode(i[:cap]) if len(i) > cap else t
            for i, t in zip(ids, texts, strict=True)
        ]
        conversation, length = render(cut)
        if length <= budget:
            return conversation, True, length
        cap -= max(1, (length - budget) // max(1, sum(len(i) > cap for i in ids)))
    raise ValueError(f"row doc_id {row.get('doc_id')!r}: cannot fit its prompt in {budget} tokens")
