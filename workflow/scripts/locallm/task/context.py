"""Fit prompts into a model's context: cut document texts, never the instruction or an answer.

A prompt longer than the model's positions crashes some architectures (GPT-2's learned position
table) and silently degrades others. Only the `text` field of the rows is cut: the instruction,
metadata fields, the few-shot examples' answers and the room kept for the answer stay whole. The
passage asked about is cut last, and how much of it the prompt holds is recorded (FittedPrompt),
so a stage that saw less of the text is never compared as if it saw all of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class FittedPrompt:
    """A row's prompt fitted into the context, and how much of its passage the model sees."""

    conversation: list[dict]
    tokens: int
    passage_tokens: int  # the row's own text, tokenized
    passage_kept: int  # of which the prompt holds this many
    examples_cut: bool = False

    @property
    def cut(self) -> bool:
        """True when the row's own passage was cut (the examples' texts do not count)."""
        return self.passage_kept < self.passage_tokens

    @property
    def seen(self) -> float:
        """The share of the passage's tokens in the prompt (1.0: whole)."""
        return self.passage_kept / self.passage_tokens if self.passage_tokens else 1.0


# Below this many tokens a few-shot example shows little more than its answer; rather than empty
# the examples, the row's passage is then cut alongside them (and the cut recorded).
EXAMPLE_MIN_TOKENS = 32


def fit_prompt(
    row: Mapping[str, Any],
    task: dict[str, Any],
    examples: Sequence[Mapping[str, Any]],
    tokenizer,
    budget: int,
) -> FittedPrompt:
    """The row's chat messages in at most `budget` tokens (the context less the answer's).

    The passage asked about comes first: the few-shot examples' texts give way before it, sharing
    what the fixed parts and the whole passage leave (short examples stay whole). Only when that
    would leave the examples under EXAMPLE_MIN_TOKENS are the passage and the examples cut to an
    equal share. Texts are cut from their ends; instruction, answers and template stay whole.
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
        return FittedPrompt(conversation, length, 0, 0)
    texts = [str(r[TEXT_FIELD]) for r in records]
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    passage = len(ids[-1])
    conversation, length = render(texts)
    if length <= budget:
        return FittedPrompt(conversation, length, passage, passage)
    _, fixed = render([""] * len(texts))
    if fixed >= budget:
        raise ValueError(
            f"row doc_id {row.get('doc_id')!r}: the prompt without any document text takes "
            f"{fixed} tokens, the model's context less the answer is {budget}: shorten "
            "task.prompt or task.system_prompt, or lower inference.fewshot_k"
        )
    lengths = [len(i) for i in ids]
    if examples and budget - fixed - passage > 0:
        cap = equal_share_cap(lengths[:-1], budget - fixed - passage)
        examples_only = [True] * len(examples) + [False]
        fitted = _shrink(render, tokenizer, ids, texts, budget, cap, examples_only)
        if fitted is not None and fitted[2] >= min(EXAMPLE_MIN_TOKENS, max(lengths[:-1])):
            return FittedPrompt(fitted[0], fitted[1], passage, passage, examples_cut=True)
    everything = [True] * len(texts)
    fitted = _shrink(
        render, tokenizer, ids, texts, budget, equal_share_cap(lengths, budget - fixed), everything
    )
    if fitted is None:
        raise ValueError(
            f"row doc_id {row.get('doc_id')!r}: cannot fit its prompt in {budget} tokens"
        )
    conversation, length, cap = fitted
    return FittedPrompt(
        conversation,
        length,
        passage,
        min(passage, cap),
        examples_cut=any(n > cap for n in lengths[:-1]),
    )


def _shrink(render, tokenizer, ids, texts, budget, cap, cuttable):
    """(conversation, tokens, cap) with the `cuttable` texts cut to at most `cap` tokens, the
    largest cap from `cap` down that fits `budget`; None when even cap 0 does not fit."""
    # Tokens merge differently across a cut and a join, so check the rendered length and retry.
    while cap >= 0:
        cut = [
            tokenizer.decode(i[:cap]) if may and len(i) > cap else t
            for i, t, may in zip(ids, texts, cuttable, strict=True)
        ]
        conversation, length = render(cut)
        if length <= budget:
            return conversation, length, cap
        over = sum(may and len(i) > cap for i, may in zip(ids, cuttable, strict=True))
        cap -= max(1, (length - budget) // max(1, over))
    return None
