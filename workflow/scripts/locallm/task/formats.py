"""How a conversation becomes the text a model reads: its chat template, or for a base model (no
chat template) a plain-text completion.

A base model was never taught a chat format, so it is asked the way it was pretrained: text that
the answer naturally continues. `completion_format` gives one solved block, e.g.
"{prompt}\\nAnswer: {answer}\\n\\n"; a question is the block up to the answer ("...\\nAnswer:"),
few-shot examples are earlier solved blocks, and an SFT or DPO example is the question followed by
its answer. The form is installed as the tokenizer's chat template, so zero-shot, few-shot, SFT,
DPO and scoring all render through the one `apply_chat_template` path and cannot disagree.
"""

from __future__ import annotations

import json
import string
from typing import Any

FORMATS = ("auto", "chat", "completion")
FIELDS = ("prompt", "answer")


def completion_problems(fmt: str, key: str = "training.completion_format") -> list[str]:
    """What is wrong with a completion format, one line naming the key and the fix."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(fmt) if field is not None]
    except ValueError as error:
        return [f"config {key} {fmt!r} is not a valid template ({error}); write a brace as {{{{"]
    if fields != list(FIELDS):
        return [
            f"config {key} {fmt!r} has fields {fields}; it needs {{prompt}} then {{answer}}, "
            "each once, e.g. '{prompt}\\nAnswer: {answer}\\n\\n'"
        ]
    return []


def completion_parts(fmt: str) -> dict[str, str]:
    """The literal texts of a completion format: before the prompt (`head`), between prompt and
    answer (`cue`, without trailing spaces), before the answer (`lead`) and after it (`tail`).

    The spaces before the answer go with the answer: tokenizers attach a word's leading space to
    the word ("▁spoken"), so a prompt that ended in a space would put a lone space token where the
    model expects none.
    """
    literals = [literal for literal, _, _, _ in string.Formatter().parse(fmt)]
    head, between, tail = (literals + [""] * 3)[:3]
    cue = between.rstrip(" ")
    return {"head": head, "cue": cue, "lead": between[len(cue) :], "tail": tail}


def completion_template(fmt: str, bos_token: str | None = None) -> str:
    """A Jinja chat template that renders a conversation as plain completion blocks.

    System message, then each user turn as `head + prompt + cue`, each assistant turn as
    `lead + answer + tail`. The generation prompt adds nothing: a question already ends at the cue.
    `bos_token` starts the text when the tokenizer would add it to plain text (Gemma expects it).
    """
    parts = {name: json.dumps(text) for name, text in completion_parts(fmt).items()}
    # Each literal is a JSON string, which Jinja reads as a string literal: user text never
    # becomes template syntax.
    start = f"{{{{ {json.dumps(bos_token)} }}}}" if bos_token else ""
    return (
        start + "{%- for message in messages -%}"
        "{%- if message['role'] == 'system' -%}"
        f"{{{{ message['content'] }}}}{{{{ {parts['tail']} }}}}"
        "{%- elif message['role'] == 'user' -%}"
        f"{{{{ {parts['head']} }}}}{{{{ message['content'] }}}}{{{{ {parts['cue']} }}}}"
        "{%- else -%}"
        f"{{{{ {parts['lead']} }}}}{{{{ message['content'] }}}}{{{{ {parts['tail']} }}}}"
        "{%- endif -%}"
        "{%- endfor -%}"
    )


def format_kind(settings: dict[str, Any], has_template: bool) -> str:
    """`chat` or `completion`: what a variant's prompts are rendered as (prompt_format `auto`:
    chat when the model ships a template or training.chat_template gives one)."""
    choice = settings["prompt_format"]
    if choice == "auto":
        return "chat" if has_template or settings["chat_template"] else "completion"
    return choice


def adds_bos(tokenizer) -> bool:
    """True when the tokenizer puts its BOS token before plain text (Gemma, Llama 2 do)."""
    if tokenizer.bos_token_id is None:
        return False
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id


def apply_prompt_format(tokenizer, settings: dict[str, Any]) -> str:
    """Give the tokenizer the variant's format as its chat template; return `chat`/`completion`.

    training.chat_template replaces the model's template; a model without one (a base model), or
    prompt_format `completion`, gets the completion form of training.completion_format.
    """
    kind = format_kind(settings, bool(tokenizer.chat_template))
    if kind == "completion":
        bos = tokenizer.bos_token if adds_bos(tokenizer) else None
        tokenizer.chat_template = completion_template(settings["completion_format"], bos)
    elif settings["chat_template"]:
        tokenizer.chat_template = settings["chat_template"]
    elif not tokenizer.chat_template:
        raise ValueError(
            "config prompt_format is `chat` but the tokenizer has no chat template; set "
            "training.chat_template, or prompt_format `auto` or `completion` for a base model"
        )
    return kind
