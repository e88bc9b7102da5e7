"""The task: how a table row becomes chat messages (the prompt) and an answer (the target).

Training (build_sft, build_preferences) and inference call these same functions, so the model is
asked the same question in both.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

import numpy as np


def prompt_columns(task: dict[str, Any]) -> list[str]:
    """The columns the prompt template reads, in order of appearance."""
    names = [field for _, field, _, _ in string.Formatter().parse(task["prompt"]) if field]
    return list(dict.fromkeys(name.split(".")[0].split("[")[0] for name in names))


def check_columns(columns: list[str], task: dict[str, Any], table: str) -> None:
    """Fail with the missing column and the config key that asked for it."""
    needed = {f"task.prompt field {{{c}}}": c for c in prompt_columns(task)}
    target_key = "label_column" if task["kind"] == "classify" else "target_column"
    if task[target_key] is None:
        raise ValueError(f"config task.{target_key} must be set for task.kind {task['kind']!r}")
    needed[f"task.{target_key}"] = task[target_key]
    missing = {key: col for key, col in needed.items() if col not in columns}
    if missing:
        wanted = ", ".join(f"{col!r} (from {key})" for key, col in missing.items())
        raise ValueError(f"{table}: missing column(s) {wanted}; it has: {', '.join(columns)}")


def build_prompt(row: Mapping[str, Any], task: dict[str, Any]) -> list[dict[str, str]]:
    """The chat messages asking the task's question about one row (system message optional)."""
    messages = []
    if task["system_prompt"]:
        messages.append({"role": "system", "content": task["system_prompt"]})
    messages.append({"role": "user", "content": task["prompt"].format(**dict(row))})
    return messages


def format_target(row: Mapping[str, Any], task: dict[str, Any]) -> str:
    """The answer the model should give for one row: its gold label, or its target text."""
    if task["kind"] == "classify":
        return str(row[task["label_column"]])
    return str(row[task["target_column"]])


def other_label(gold: str, labels: list[str], rng: np.random.Generator) -> str:
    """A label other than `gold`, drawn uniformly with `rng` (the rejected answer of a pair)."""
    others = [label for label in labels if label != gold]
    if not others:
        raise ValueError(f"config task.labels {labels!r} has no label other than {gold!r}")
    return others[int(rng.integers(len(others)))]
