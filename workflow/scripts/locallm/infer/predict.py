"""The infer job: one variant's model at one stage over one shard, classify or generate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from locallm.infer.batching import Progress
from locallm.infer.generation import generate_texts, majority_vote, normalise, parse_label
from locallm.infer.scoring import label_continuations, label_log_likelihoods, label_probabilities
from locallm.logs import get_logger, warn
from locallm.model.facts import context_length
from locallm.tables import read_table, write_table
from locallm.task.context import fit_prompt, prompt_tokens, render_prompt
from locallm.task.formats import apply_prompt_format

log = get_logger(__name__)


def render_prompts(tokenizer, conversations: Sequence[list[dict]]) -> list[str]:
    """Chat-templated prompt strings that end where the assistant's answer begins."""
    return [render_prompt(tokenizer, c) for c in conversations]


def shard_rows(table: pd.DataFrame, shard: int, n_shards: int) -> pd.DataFrame:
    """Rows of one shard: every n_shards-th row from `shard` (row order is the table's)."""
    return table.iloc[shard::n_shards].reset_index(drop=True)


def predict(
    model,
    tokenizer,
    conversations: Sequence[list[dict]],
    settings: dict[str, Any],
    labels: Sequence[str],
    seed: int,
) -> pd.DataFrame:
    """Prompt, output, parsed_label, unmatched, prob_<label> or vote_share: a row per prompt."""
    prompts = render_prompts(tokenizer, conversations)
    frame = pd.DataFrame({"prompt": prompts})
    if settings["mode"] == "classify":
        if not labels:
            raise ValueError(
                "config inference.mode classify needs task.labels (task.kind classify)"
            )
        continuations = label_continuations(tokenizer, conversations[0], labels)
        with Progress(len(prompts), "classify") as progress:
            ll, n_tokens = label_log_likelihoods(
                model, tokenizer, prompts, continuations, batch_tokens=settings["batch_tokens"],
                progress=progress, prefix_cache=settings["prefix_cache"],
            )  # fmt: skip
        if len(set(n_tokens.tolist())) > 1 and settings["label_scoring"] == "sum":
            log.info(
                "labels differ in token count %s; scoring sums",
                dict(zip(labels, n_tokens.tolist(), strict=True)),
            )
        probs = label_probabilities(ll, n_tokens, settings["label_scoring"])
        best = probs.argmax(axis=1)
        frame["output"] = [labels[j] for j in best]
        frame["parsed_label"] = frame["output"]
        frame["unmatched"] = False
        for j, label in enumerate(labels):
            frame[f"prob_{label}"] = probs[:, j]
            frame[f"loglik_{label}"] = ll[:, j]
        return frame
    with Progress(len(prompts), "generate") as progress:
        samples = generate_texts(
            model,
            tokenizer,
            prompts,
            batch_size=settings["batch_size"],
            batch_tokens=settings["batch_tokens"],
            max_new_tokens=settings["max_new_tokens"],
            do_sample=settings["do_sample"],
            temperature=settings["temperature"],
            top_p=settings["top_p"],
            num_samples=settings["num_samples"],
            seed=seed,
            progress=progress,
        )
    frame["output"] = [s[0] for s in samples]
    if settings["num_samples"] > 1:
        frame["samples"] = samples
    if labels:
        votes = [majority_vote([parse_label(t, labels) for t in s]) for s in samples]
        frame["parsed_label"] = pd.array([v[0] for v in votes], dtype="string")
        frame["vote_share"] = [v[1] for v in votes]
    else:
        # Free-text task: the vote is over whitespace/case-normalised answers.
        votes = [majority_vote([normalise(t) for t in s]) for s in samples]
        frame["parsed_label"] = pd.array([v[0] for v in votes], dtype="string")
        frame["vote_share"] = [v[1] for v in votes]
    frame["unmatched"] = frame["parsed_label"].isna().to_numpy()
    return frame


def answer_tokens(
    tokenizer, conversation: list[dict], labels: Sequence[str], settings: dict[str, Any]
) -> int:
    """Tokens kept free after the prompt: the longest label continuation, or max_new_tokens."""
    if settings["mode"] == "classify":
        continuations = label_continuations(tokenizer, conversation, labels)
        return max(len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in continuations)
    return settings["max_new_tokens"]


@dataclass(frozen=True)
class FittedRows:
    """Each row's chat messages fitted into the context, with what the fitting did per row."""

    conversations: list[list[dict]]
    text_cut: np.ndarray  # the row's own passage was cut
    text_seen: np.ndarray  # the share of its passage's tokens the prompt holds
    examples_cut: np.ndarray  # a few-shot example's text was cut
    prompt_tokens: np.ndarray

    def columns(self) -> dict[str, np.ndarray]:
        """The columns each prediction row carries."""
        return {
            "text_cut": self.text_cut,
            "text_seen": self.text_seen,
            "examples_cut": self.examples_cut,
            "prompt_tokens": self.prompt_tokens,
        }


def fit_to_context(
    model,
    tokenizer,
    rows: Sequence[dict[str, Any]],
    task: dict[str, Any],
    examples: Sequence[dict[str, Any]],
    settings: dict[str, Any],
) -> FittedRows:
    """Each row's chat messages, cut to fit the model's context less the answer's tokens (the
    examples' texts before the row's passage). A model whose config names no context length is
    not cut (a warning says so)."""
    from locallm.task.prompts import build_prompt

    labels = task["labels"] if task["kind"] == "classify" else []
    context = context_length(model.config) if hasattr(model, "config") else None
    none = np.zeros(len(rows), dtype=bool)
    if context is None:
        warn(log, "the model's config names no context length; prompts are not cut to fit")
        conversations = [build_prompt(row, task, examples) for row in rows]
        lengths = np.array([prompt_tokens(tokenizer, c) for c in conversations], dtype=int)
        return FittedRows(conversations, none, np.ones(len(rows)), none, lengths)
    if not rows:
        return FittedRows([], none, np.ones(0), none, np.zeros(0, dtype=int))
    reserve = answer_tokens(tokenizer, build_prompt(rows[0], task, examples), labels, settings)
    fitted = [fit_prompt(row, task, examples, tokenizer, context - reserve) for row in rows]
    result = FittedRows(
        conversations=[f.conversation for f in fitted],
        text_cut=np.array([f.cut for f in fitted], dtype=bool),
        text_seen=np.array([f.seen for f in fitted], dtype=float),
        examples_cut=np.array([f.examples_cut for f in fitted], dtype=bool),
        prompt_tokens=np.array([f.tokens for f in fitted], dtype=int),
    )
    cut = result.text_cut
    message = (
        f"{int(cut.sum())} of {len(rows)} prompts had the passage cut to fit the context of "
        f"{context} tokens less {reserve} for the answer (mean share of the passage seen "
        f"{result.text_seen.mean():.1%}); {int(result.examples_cut.sum())} had a few-shot "
        "example's text cut"
    )
    if cut.mean() > settings["max_cut_share"]:
        warn(log, f"{message} (above inference.max_cut_share {settings['max_cut_share']})")
    else:
        log.info(message)
    return result


def generation_settings(
    settings: dict[str, Any], seed: int, dtype: torch.dtype | None = None
) -> dict[str, Any]:
    """The settings that shaped a prediction, recorded on every row (with the dtype computed in)."""
    keys = ["mode", "label_scoring", "max_new_tokens", "do_sample", "temperature", "top_p"]
    recorded = {f"gen_{k}": settings[k] for k in keys}
    recorded["gen_num_samples"] = settings["num_samples"]
    recorded["gen_seed"] = seed
    if dtype is not None:
        recorded["gen_precision"] = str(dtype).removeprefix("torch.")
    return recorded


def load_for_inference(
    model_settings: dict[str, Any],
    base_path: str | Path,
    adapter_dir: str | Path | None,
    dtype: torch.dtype,
    settings: dict[str, Any],
):
    """The stage's model (in eval mode) and tokenizer, loaded in the inference dtype, with the
    prompt format its stage uses (chat template, or plain-text completion for a base model)."""
    from locallm.model.loading import load_stage_model

    log.info("inference in %s (inference.precision %s)", dtype, settings["precision"])
    model, tokenizer = load_stage_model(model_settings, base_path, adapter_dir, dtype=dtype)
    model.eval()
    # A trained stage's tokenizer already holds the format its data was tokenized in.
    kind = apply_prompt_format(tokenizer, model_settings)
    log.info("prompt format: %s", kind)
    return model, tokenizer


def predict_rows(
    model,
    tokenizer,
    rows: pd.DataFrame,
    task: dict[str, Any],
    examples: pd.DataFrame,
    settings: dict[str, Any],
    seed: int,
) -> pd.DataFrame:
    """Predictions of a loaded model for table rows (prompts fitted to its context): one per row,
    with what the fitting did (`text_cut`, `text_seen`, `examples_cut`, `prompt_tokens`) and the
    model's size (the infer and annotate jobs share this path)."""
    from locallm.model.loading import parameter_count

    fitted = fit_to_context(
        model, tokenizer, rows.to_dict("records"), task, examples.to_dict("records"), settings
    )
    labels = task["labels"] if task["kind"] == "classify" else []
    predicted = predict(model, tokenizer, fitted.conversations, settings, labels, seed)
    predicted = predicted.assign(**fitted.columns())
    # What the run cost grows with: the model's size (counted as loaded, adapters included).
    predicted["model_params"] = parameter_count(model)
    return predicted


def infer_shard(
    *,
    table: str | Path,
    output: str | Path,
    shard: int,
    settings: dict[str, Any],
    task: dict[str, Any],
    model_settings: dict[str, Any],
    metadata_columns: Sequence[str],
    seed: int,
    variant: str,
    stage: str,
    base_dir: str | Path | None,
    adapter_dir: str | Path | None,
    examples_table: str | Path | None = None,
    threads: int = 1,
) -> None:
    """Run one variant's model at one stage over one shard of the input table; write predictions.

    Given `examples_table` (the train split: stage fewshot), every prompt starts with the same
    inference.fewshot_k solved examples per label, drawn with the seed; their doc_ids are recorded.
    """
    from locallm.model.loading import resolve_base_path
    from locallm.model.precision import inference_dtype
    from locallm.task.prompts import fewshot_examples

    torch.set_num_threads(max(1, threads))
    dtype = inference_dtype(settings["precision"])
    everything = read_table(table)
    rows = shard_rows(everything, shard, settings["shards"])
    examples = pd.DataFrame()
    if examples_table is not None:
        examples = fewshot_examples(
            read_table(examples_table), task, settings["fewshot_k"], seed,
            exclude=everything["doc_id"].astype(str).tolist(),
            shortest=settings["fewshot_shortest"],
        )  # fmt: skip
        log.info("few-shot examples (doc_id): %s", ", ".join(examples["doc_id"].astype(str)))
    log.info("%s/%s shard %d: %d rows from %s", variant, stage, shard, len(rows), table)
    # The gold label rides along (evaluate compares it), even if not listed as metadata.
    extra = [*metadata_columns, task["label_column"] or task["target_column"]]
    keep = list(dict.fromkeys(["doc_id", "group_id", *[c for c in extra if c in rows]]))
    base_path = resolve_base_path(model_settings, built_dir=base_dir)
    predictions = rows[keep].copy()
    if len(rows):
        model, tokenizer = load_for_inference(
            model_settings, base_path, adapter_dir, dtype, settings
        )
        predicted = predict_rows(model, tokenizer, rows, task, examples, settings, seed)
        predictions = pd.concat([predictions, predicted], axis=1)
        unmatched = int(predictions["unmatched"].sum())
        if unmatched:
            warn(log, f"{variant}/{stage} shard {shard}: {unmatched} outputs match no label")
    else:
        warn(log, f"{variant}/{stage} shard {shard}: no rows (more inference.shards than rows?)")
    predictions["variant"] = variant
    predictions["stage"] = stage
    predictions["model"] = str(base_path)
    predictions["adapter"] = str(adapter_dir) if adapter_dir else None
    if examples_table is not None:
        used = examples["doc_id"].astype(str).tolist()
        predictions["fewshot_doc_ids"] = [used] * len(predictions)
    for key, value in generation_settings(settings, seed, dtype).items():
        predictions[key] = value
    write_table(predictions, output)


def gather_predictions(shards: Sequence[str | Path], output: str | Path) -> None:
    """Concatenate one variant-stage's shard predictions into one table."""
    from locallm.tables import read_tables

    table = read_tables(list(shards))
    log.info("gathered %d predictions from %d shards", len(table), len(shards))
    write_table(table, output)
