"""The task: how a table row becomes chat messages (the prompt) and an answer (the target).

Training (build_sft, build_preferences) and inference call these same functions, so the model is
asked the same question in both.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from locallm.logs import get_logger, warn
from locallm.tables import read_table, write_table

log = get_logger("tasks")


def prompt_columns(task: dict[str, Any]) -> list[str]:
    """The columns the prompt template reads, in order of appearance."""
    names = [field for _, field, _, _ in string.Formatter().parse(task["prompt"]) if field]
    return list(dict.fromkeys(name.split(".")[0].split("[")[0] for name in names))


def prompt_problems(task: dict[str, Any]) -> list[str]:
    """What is wrong with task.prompt, one line each naming the fix (empty when it is fine)."""
    prompt = task["prompt"]
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(prompt) if field is not None]
    except ValueError as error:
        return [
            f"config task.prompt {prompt!r} is not a valid template ({error}); "
            "write a literal brace as {{ or }}"
        ]
    problems = []
    positional = [f for f in fields if f == "" or f.split(".")[0].split("[")[0].isdigit()]
    if positional:
        problems.append(
            "config task.prompt has positional field(s) "
            f"{', '.join('{' + f + '}' for f in positional)}; name a column instead, e.g. {{text}}"
        )
    # `{text.__class__}` or `{text[0]}` would render Python internals or pieces of a value into
    # every prompt: only plain column names are fields.
    reaching = [f for f in fields if f not in positional and ("." in f or "[" in f)]
    if reaching:
        problems.append(
            f"config task.prompt field(s) {', '.join('{' + f + '}' for f in reaching)} read an "
            "attribute or item of a value; use plain column names like {text}"
        )
    columns = prompt_columns(task) if not positional else []
    if "text" not in columns and not positional:
        problems.append(
            f"config task.prompt {prompt!r} has no {{text}}: the model would never see the "
            "document; add {text} where the document goes"
        )
    answer_key = "label_column" if task["kind"] == "classify" else "target_column"
    answer = task[answer_key]
    if answer is not None and answer in columns:
        problems.append(
            f"config task.prompt contains {{{answer}}}, the task.{answer_key}: the answer would be "
            "in the question; remove it from the prompt"
        )
    return problems


def normalise_label(value: Any) -> str:
    """A label as task.label_normalize compares it: stripped and case folded."""
    return str(value).strip().casefold()


def label_problems(task: dict[str, Any]) -> list[str]:
    """Label settings that cannot work, one line each (empty when fine)."""
    problems = []
    if task["labels"] and task["label_column"] is None:
        problems.append("config task.labels is set but task.label_column is null; name the column")
    if task["label_normalize"]:
        seen: dict[str, str] = {}
        for label in task["labels"]:
            key = normalise_label(label)
            if key in seen:
                problems.append(
                    f"config task.labels {seen[key]!r} and {label!r} are the same label under "
                    "task.label_normalize; keep one, or set task.label_normalize: false"
                )
            seen.setdefault(key, label)
    return problems


def preference_problems(task: dict[str, Any]) -> list[str]:
    """task.preferences settings that cannot work, one line each (empty when fine)."""
    preferences = task["preferences"]
    if preferences["source"] == "file" and not preferences["path"]:
        return [
            "config task.preferences.source is `file` but task.preferences.path is not set; "
            "give the path of a Parquet, CSV or JSONL file with prompt, chosen, rejected"
        ]
    return []


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


def build_prompt(
    row: Mapping[str, Any], task: dict[str, Any], examples: Sequence[Mapping[str, Any]] = ()
) -> list[dict[str, str]]:
    """The chat messages asking the task's question about one row (system message optional).

    Few-shot examples come first as earlier turns: the same question about each example row,
    answered with its gold label (or target), so the model sees solved cases in the chat format.
    """
    messages = []
    if task["system_prompt"]:
        messages.append({"role": "system", "content": task["system_prompt"]})
    for example in examples:
        messages.append({"role": "user", "content": task["prompt"].format(**dict(example))})
        messages.append({"role": "assistant", "content": format_target(example, task)})
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


def shortest_rows(rows: pd.DataFrame, share: float, at_least: int) -> pd.DataFrame:
    """The `share` of rows with the shortest texts (at least `at_least`; ties kept in order)."""
    keep = max(at_least, math.ceil(share * len(rows)))
    order = rows["text"].astype(str).str.len().sort_values(kind="stable").index
    return rows.loc[order[:keep]]


def fewshot_examples(
    train: pd.DataFrame,
    task: dict[str, Any],
    k: int,
    seed: int,
    exclude: Sequence[str] = (),
    shortest: float = 1.0,
) -> pd.DataFrame:
    """Solved examples for few-shot prompts: k train rows per label, drawn with the seed.

    `train` is the train split, and rows whose doc_id is in `exclude` (the documents being asked
    about) are never drawn, so no test document is ever an example. Each label's rows are drawn
    from its `shortest` share of shortest texts, so the examples leave room for the passage asked
    about. A generate task has no labels to balance: k rows in all. The examples are shuffled so
    one label's are not all nearest the question.
    """
    pool = train[~train["doc_id"].astype(str).isin({str(d) for d in exclude})]
    if task["kind"] == "classify":
        picked = []
        for label in task["labels"]:
            rows = pool[pool[task["label_column"]] == label]
            if len(rows) < k:
                warn(
                    log,
                    f"few-shot: label {label!r} has {len(rows)} train rows, fewer than "
                    f"inference.fewshot_k {k}",
                )
            rows = shortest_rows(rows, shortest, k)
            picked.append(rows.sample(n=min(k, len(rows)), random_state=seed))
        chosen = pd.concat(picked)
    else:
        pool = shortest_rows(pool, shortest, k)
        chosen = pool.sample(n=min(k, len(pool)), random_state=seed)
    return chosen.sample(frac=1, random_state=seed).reset_index(drop=True)


def cap_examples(df: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """At most `limit` rows drawn with the seed, in their original order (None keeps all)."""
    if limit is None or len(df) <= limit:
        return df
    return df.sample(n=limit, random_state=seed).sort_index()


def check_labels(df: pd.DataFrame, task: dict[str, Any], table: str) -> None:
    """Fail on a row whose gold label is not in task.labels (split should have rejected it)."""
    if task["kind"] != "classify":
        return
    bad = df[~df[task["label_column"]].isin(task["labels"])]
    if len(bad):
        row = bad.iloc[0]
        raise ValueError(
            f"{table}: row doc_id {row['doc_id']!r} has {task['label_column']} "
            f"{row[task['label_column']]!r}, not one of task.labels {task['labels']}"
        )


def sft_table(df: pd.DataFrame, task: dict[str, Any]) -> pd.DataFrame:
    """TRL's conversational prompt/completion table: one row per document."""
    return pd.DataFrame(
        {
            "doc_id": df["doc_id"].astype(str).to_numpy(),
            "group_id": df["group_id"].astype(str).to_numpy(),
            "prompt": [build_prompt(row, task) for row in df.to_dict("records")],
            "completion": [
                [{"role": "assistant", "content": format_target(row, task)}]
                for row in df.to_dict("records")
            ],
        }
    )


def preferences_from_labels(df: pd.DataFrame, task: dict[str, Any], seed: int) -> pd.DataFrame:
    """TRL prompt/chosen/rejected table (conversational): chosen = gold, rejected = another."""
    if task["kind"] != "classify":
        raise ValueError(
            "config task.preferences.source `labels` needs task.kind `classify`; "
            "for `generate` give a file (task.preferences.source: file, task.preferences.path)"
        )
    rng = np.random.default_rng(seed)
    records = df.to_dict("records")
    gold = [format_target(row, task) for row in records]
    return pd.DataFrame(
        {
            "doc_id": df["doc_id"].astype(str).to_numpy(),
            "group_id": df["group_id"].astype(str).to_numpy(),
            "prompt": [build_prompt(row, task) for row in records],
            "chosen": [[{"role": "assistant", "content": g}] for g in gold],
            "rejected": [
                [{"role": "assistant", "content": other_label(g, task["labels"], rng)}]
                for g in gold
            ],
        }
    )


def read_preference_file(path: str) -> pd.DataFrame:
    """A user's preference file (Parquet, CSV or JSONL) with prompt, chosen, rejected columns."""
    suffix = Path(path).suffix.lower()
    if not Path(path).exists():
        raise FileNotFoundError(f"config task.preferences.path: {path} not found")
    if suffix == ".parquet":
        df = pd.read_parquet(path)
    elif suffix in (".csv", ".tsv"):
        df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    elif suffix in (".jsonl", ".json"):
        df = pd.read_json(path, lines=suffix == ".jsonl")
    else:
        raise ValueError(f"config task.preferences.path {path}: use .parquet, .csv, .tsv or .jsonl")
    missing = [c for c in ("prompt", "chosen", "rejected") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; it has {list(df.columns)}")
    return df


def preferences_from_file(
    df: pd.DataFrame, task: dict[str, Any], split: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pairs, rejects) of a user's preference rows for one split; bad rows get a reason.

    Rows without a `split` column all belong to train. Plain-text prompts and answers become chat
    messages (the task's system prompt first).
    """
    df = df.reset_index(drop=True)
    if "split" in df.columns:
        df = df[df["split"] == split]
    elif split != "train":
        df = df.iloc[0:0]
    doc_id = df["doc_id"].astype(str) if "doc_id" in df else "pref-" + df.index.astype(str)
    group_id = df["group_id"].astype(str) if "group_id" in df else doc_id
    df = df.assign(doc_id=doc_id, group_id=group_id)
    empty = df[["prompt", "chosen", "rejected"]].isna().any(axis=1) | (
        df[["prompt", "chosen", "rejected"]]
        .astype(str)
        .apply(lambda c: c.str.strip() == "")
        .any(axis=1)
    )
    same = ~empty & (df["chosen"].astype(str).str.strip() == df["rejected"].astype(str).str.strip())
    reason = pd.Series(None, index=df.index, dtype=object)
    reason[empty] = "build_preferences.missing_field"
    reason[same] = "build_preferences.chosen_equals_rejected"
    rejects = df[reason.notna()].assign(reason=reason[reason.notna()])
    kept = df[reason.isna()]
    system = [{"role": "system", "content": task["system_prompt"]}] if task["system_prompt"] else []
    pairs = pd.DataFrame(
        {
            "doc_id": kept["doc_id"].to_numpy(),
            "group_id": kept["group_id"].to_numpy(),
            "prompt": [[*system, {"role": "user", "content": str(p)}] for p in kept["prompt"]],
            "chosen": [[{"role": "assistant", "content": str(a)}] for a in kept["chosen"]],
            "rejected": [[{"role": "assistant", "content": str(a)}] for a in kept["rejected"]],
        }
    )
    return pairs, rejects[["doc_id", "group_id", "reason"]].reset_index(drop=True)


def build_sft(split_table: str, output: str, task: dict[str, Any], split: str, seed: int) -> None:
    """Write the prompt/completion table of one split."""
    df = read_table(split_table)
    check_columns(list(df.columns), task, split_table)
    check_labels(df, task, split_table)
    capped = cap_examples(df, task["max_examples"].get(split), seed)
    if len(capped) < len(df):
        log.info("%s: %d of %d rows (task.max_examples.%s)", split, len(capped), len(df), split)
    table = sft_table(capped, task)
    write_table(table, output)
    log.info("%s: %d prompt/completion rows -> %s", split, len(table), output)


def build_preferences(
    split_table: str, output: str, rejects: str, task: dict[str, Any], split: str, seed: int
) -> None:
    """Write the prompt/chosen/rejected table of one split (from labels or the user's file)."""
    if task["preferences"]["source"] == "file":
        if not task["preferences"]["path"]:
            raise ValueError(
                "config task.preferences.source is `file` but task.preferences.path is null"
            )
        pairs, rejected = preferences_from_file(
            read_preference_file(task["preferences"]["path"]), task, split
        )
    else:
        df = read_table(split_table)
        check_columns(list(df.columns), task, split_table)
        check_labels(df, task, split_table)
        df = cap_examples(df, task["max_examples"].get(split), seed)
        pairs = preferences_from_labels(df, task, seed)
        rejected = pd.DataFrame(columns=["doc_id", "group_id", "reason"], dtype=object)
    capped = cap_examples(pairs, task["preferences"]["max_pairs"], seed)
    if len(capped) < len(pairs):
        log.info("%s: %d of %d pairs (task.preferences.max_pairs)", split, len(capped), len(pairs))
    write_table(capped.reset_index(drop=True), output)
    write_table(rejected, rejects)
    log.info("%s: %d preference pairs, %d rejected", split, len(capped), len(rejected))
