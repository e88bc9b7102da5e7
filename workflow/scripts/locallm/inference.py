"""Batched inference: generate answers (with self-consistency) or score each label's likelihood."""

from __future__ import annotations

import re
import string
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from locallm.context import context_length, fit_prompt, prompt_tokens, render_prompt
from locallm.logs import get_logger, warn
from locallm.tables import read_table, write_table

log = get_logger(__name__)

UNMATCHED = (
    None  # parsed_label of an output that names no label; the row stays, flagged `unmatched`
)
PROGRESS_SECONDS = 30.0  # inference logs rows done and rows/s at least this often


# --- batching -------------------------------------------------------------------------------------


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (padding waste is smallest).

    Longest first also makes the first batch the one that runs out of memory, if any does.
    """
    if batch_size < 1:
        raise ValueError(f"config inference.batch_size must be >= 1, got {batch_size}")
    # A stable sort keeps equal-length rows in input order, so batches are deterministic.
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _pad_token_id(tokenizer) -> int:
    """The pad id; a tokenizer without one is refused (the model half adds and saves it)."""
    if tokenizer.pad_token_id is None:
        raise ValueError(
            "the tokenizer has no pad token; the model stage should have added one "
            "(locallm.models saves a pad token distinct from EOS)"
        )
    return tokenizer.pad_token_id


def _left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded input ids and attention mask for a batch of token lists."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(seq)
            mask[row, width - len(seq) :] = 1
    return ids, mask


def _model_device(model) -> torch.device:
    return next(model.parameters()).device


class Progress:
    """Logs rows done and rows/s every `interval` seconds from a side thread, and at the end.

    A thread, because one batch of long prompts on a CPU can take longer than the interval.
    """

    def __init__(self, total: int, what: str, interval: float = PROGRESS_SECONDS):
        self.total, self.what, self.interval = total, what, interval
        self.done = 0
        self._start = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, daemon=True)

    def __enter__(self) -> Progress:
        self._start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.report()

    def advance(self, rows: int) -> None:
        self.done += rows

    def report(self) -> None:
        elapsed = time.monotonic() - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        log.info("%s: %d of %d rows done, %.2f rows/s", self.what, self.done, self.total, rate)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.interval):
            self.report()


# --- prompts --------------------------------------------------------------------------------------


def render_prompts(tokenizer, conversations: Sequence[list[dict]]) -> list[str]:
    """Chat-templated prompt strings that end where the assistant's answer begins."""
    return [render_prompt(tokenizer, c) for c in conversations]


def label_continuations(tokenizer, conversation: list[dict], labels: Sequence[str]) -> list[str]:
    """The text the chat template puts after the prompt when the assistant answers each label.

    It includes the end-of-turn marker (EOS): scored with it, a label that is a prefix of another
    ("Democratic" vs "Democratic-Republican") is not mistaken for the longer one's beginning.
    """
    prompt = render_prompts(tokenizer, [conversation])[0]
    continuations = []
    for label in labels:
        full = tokenizer.apply_chat_template(
            [*conversation, {"role": "assistant", "content": label}], tokenize=False
        )
        if full.startswith(prompt):
            text = full[len(prompt) :]
            eos = tokenizer.eos_token
            # Whatever the template adds after the end of the turn is the same for every label.
            if eos and eos in text[len(label) :]:
                text = text[: text.index(eos, len(label)) + len(eos)]
        else:
            text = label + (tokenizer.eos_token or "")
        continuations.append(text)
    return continuations


# --- classify: label log-likelihoods --------------------------------------------------------------


@torch.inference_mode()
def label_log_likelihoods(
    model,
    tokenizer,
    prompts: Sequence[str],
    continuations: Sequence[str],
    *,
    batch_size: int,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Summed log-probability of each continuation after each prompt, and each one's token count.

    Each prompt is run once; its key/value cache is repeated for the labels, so scoring L labels
    costs one prompt pass plus L short continuation passes, not L full passes.
    Returns (log_likelihoods of shape (n_prompts, n_labels), token counts of shape (n_labels,)).
    """
    pad_id = _pad_token_id(tokenizer)
    device = _model_device(model)
    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    cont_ids = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations]
    if any(len(c) == 0 for c in cont_ids):
        raise ValueError(f"a label continuation tokenizes to nothing: {list(continuations)!r}")
    n_labels, longest = len(cont_ids), max(len(c) for c in cont_ids)
    cont = torch.full((n_labels, longest), pad_id, dtype=torch.long)
    cont_mask = torch.zeros((n_labels, longest), dtype=torch.long)
    for j, ids in enumerate(cont_ids):
        cont[j, : len(ids)] = torch.tensor(ids)
        cont_mask[j, : len(ids)] = 1

    scores = np.zeros((len(prompts), n_labels))
    for batch in length_sorted_batches([len(p) for p in prompt_ids], batch_size):
        ids, mask = _left_pad([prompt_ids[i] for i in batch], pad_id)
        ids, mask = ids.to(device), mask.to(device)
        # Positions count real tokens only, as generate() does with left padding.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = model(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
            logits_to_keep=1,
        )  # fmt: skip
        first = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)  # (B, V)
        # log p(first token of each label | prompt): (B, L)
        total = first[:, cont[:, 0].to(device)]
        if longest > 1:
            b = len(batch)
            cache = out.cache if hasattr(out, "cache") else out.past_key_values
            cache.batch_repeat_interleave(n_labels)
            step_ids = cont[:, :-1].repeat(b, 1).to(device)  # (B*L, T-1), row = prompt-major
            step_mask = cont_mask[:, :-1].repeat(b, 1).to(device)
            full_mask = torch.cat([mask.repeat_interleave(n_labels, 0), step_mask], dim=1)
            start = mask.sum(-1).repeat_interleave(n_labels, 0).unsqueeze(1)
            step_pos = start + torch.arange(longest - 1, device=device).unsqueeze(0)
            out2 = model(
                input_ids=step_ids, attention_mask=full_mask, position_ids=step_pos,
                cache=cache, use_cache=True,
            )  # fmt: skip
            logp = torch.log_softmax(out2.logits.float(), dim=-1)  # (B*L, T-1, V)
            targets = cont[:, 1:].repeat(b, 1).to(device)
            picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            picked = picked * cont_mask[:, 1:].repeat(b, 1).to(device)
            total = total + picked.sum(-1).view(b, n_labels)
        scores[batch] = total.cpu().numpy()
        if progress:
            progress.advance(len(batch))
    return scores, cont_mask.sum(-1).numpy()


def label_probabilities(
    log_likelihoods: np.ndarray, n_tokens: np.ndarray, scoring: str
) -> np.ndarray:
    """Per-label probabilities: a softmax over the label set of summed or per-token mean scores."""
    if scoring == "sum":
        scores = log_likelihoods
    elif scoring == "mean":
        scores = log_likelihoods / n_tokens[None, :]
    else:
        raise ValueError(f"config inference.label_scoring must be sum or mean, got {scoring!r}")
    scores = scores - scores.max(axis=1, keepdims=True)
    weights = np.exp(scores)
    return weights / weights.sum(axis=1, keepdims=True)


@torch.inference_mode()
def text_log_likelihoods(
    model, tokenizer, texts: Sequence[str], *, batch_size: int, max_tokens: int
) -> tuple[np.ndarray, np.ndarray]:
    """Negative log-likelihood (summed) and predicted-token count of each text, cut at max_tokens.

    The first token has no context and is not predicted; perplexity is exp(sum nll / sum count).
    """
    pad_id = _pad_token_id(tokenizer)
    device = _model_device(model)
    ids = [tokenizer(t, add_special_tokens=True)["input_ids"][:max_tokens] for t in texts]
    nll = np.zeros(len(texts))
    for batch in length_sorted_batches([len(i) for i in ids], batch_size):
        width = max(len(ids[i]) for i in batch)
        tokens = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            tokens[row, : len(ids[i])] = torch.tensor(ids[i])
            mask[row, : len(ids[i])] = 1
        tokens, mask = tokens.to(device), mask.to(device)
        logits = model(input_ids=tokens, attention_mask=mask).logits[:, :-1].float()
        logp = torch.log_softmax(logits, -1).gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
        nll[batch] = -(logp * mask[:, 1:]).sum(-1).cpu().numpy()
    return nll, np.array([max(len(i) - 1, 0) for i in ids])


# --- generate: batched generation, parsing, self-consistency -------------------------------------


@torch.inference_mode()
def generate_texts(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    batch_size: int,
    max_new_tokens: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    num_samples: int = 1,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[list[str]]:
    """`num_samples` generated answers per prompt, in input order (batches run longest first)."""
    pad_id = _pad_token_id(tokenizer)
    device = _model_device(model)
    torch.manual_seed(seed)
    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    sampling = {"temperature": temperature, "top_p": top_p} if do_sample else {}
    if num_samples > 1 and not do_sample:
        warn(log, f"num_samples={num_samples} with greedy decoding gives identical samples")
    results: list[list[str]] = [[] for _ in prompts]
    for batch in length_sorted_batches([len(p) for p in prompt_ids], batch_size):
        ids, mask = _left_pad([prompt_ids[i] for i in batch], pad_id)
        out = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            num_return_sequences=num_samples,
            pad_token_id=pad_id,
            eos_token_id=tokenizer.eos_token_id,
            **sampling,
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


def _normalise(text: str) -> str:
    return " ".join(text.casefold().split())


def parse_label(output: str, labels: Sequence[str]) -> str | None:
    """The label an output names, tolerating case, whitespace, punctuation and a leading phrase.

    The answer may be the label alone or a sentence naming exactly one label as a whole word
    (hyphens bind, so "Democratic-Republican" does not name "Democratic"). An answer naming no
    label or several ("Democratic or Republican") is unmatched: None.
    """
    text = _normalise(output).strip(_EDGE_PUNCT)
    text = _LEADING.sub("", text).strip(_EDGE_PUNCT)
    by_norm = {_normalise(label): label for label in labels}
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


# --- the rule's job -------------------------------------------------------------------------------


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
                model, tokenizer, prompts, continuations, batch_size=settings["batch_size"],
                progress=progress,
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
        votes = [majority_vote([_normalise(t) for t in s]) for s in samples]
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


def fit_to_context(
    model,
    tokenizer,
    rows: Sequence[dict[str, Any]],
    task: dict[str, Any],
    examples: Sequence[dict[str, Any]],
    settings: dict[str, Any],
) -> tuple[list[list[dict]], np.ndarray, np.ndarray]:
    """Each row's chat messages, cut to fit the model's context less the answer's tokens.

    Returns (conversations, cut flags, prompt token counts). A model whose config names no
    context length is not cut (a warning says so).
    """
    from locallm.tasks import build_prompt

    labels = task["labels"] if task["kind"] == "classify" else []
    context = context_length(model.config) if hasattr(model, "config") else None
    if context is None:
        warn(log, "the model's config names no context length; prompts are not cut to fit")
        conversations = [build_prompt(row, task, examples) for row in rows]
        lengths = np.array([prompt_tokens(tokenizer, c) for c in conversations], dtype=int)
        return conversations, np.zeros(len(rows), dtype=bool), lengths
    if not rows:
        return [], np.zeros(0, dtype=bool), np.zeros(0, dtype=int)
    reserve = answer_tokens(tokenizer, build_prompt(rows[0], task, examples), labels, settings)
    fitted = [fit_prompt(row, task, examples, tokenizer, context - reserve) for row in rows]
    cut = np.array([f[1] for f in fitted], dtype=bool)
    share = cut.mean()
    message = (
        f"{int(cut.sum())} of {len(rows)} prompts had document text cut to fit the context of "
        f"{context} tokens less {reserve} for the answer"
    )
    if share > settings["max_cut_share"]:
        warn(log, f"{message} (above inference.max_cut_share {settings['max_cut_share']})")
    else:
        log.info(message)
    return [f[0] for f in fitted], cut, np.array([f[2] for f in fitted])


def generation_settings(settings: dict[str, Any], seed: int) -> dict[str, Any]:
    """The settings that shaped a prediction, recorded on every row."""
    keys = ["mode", "label_scoring", "max_new_tokens", "do_sample", "temperature", "top_p"]
    recorded = {f"gen_{k}": settings[k] for k in keys}
    recorded["gen_num_samples"] = settings["num_samples"]
    recorded["gen_seed"] = seed
    return recorded


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
    from locallm.models import load_stage_model, resolve_base_path
    from locallm.tasks import fewshot_examples

    torch.set_num_threads(max(1, threads))
    everything = read_table(table)
    rows = shard_rows(everything, shard, settings["shards"])
    examples = pd.DataFrame()
    if examples_table is not None:
        examples = fewshot_examples(
            read_table(examples_table), task, settings["fewshot_k"], seed,
            exclude=everything["doc_id"].astype(str).tolist(),
        )  # fmt: skip
        log.info("few-shot examples (doc_id): %s", ", ".join(examples["doc_id"].astype(str)))
    log.info("%s/%s shard %d: %d rows from %s", variant, stage, shard, len(rows), table)
    # The gold label rides along (evaluate compares it), even if not listed as metadata.
    extra = [*metadata_columns, task["label_column"] or task["target_column"]]
    keep = list(dict.fromkeys(["doc_id", "group_id", *[c for c in extra if c in rows]]))
    base_path = resolve_base_path(model_settings, bootstrapped_dir=base_dir)
    predictions = rows[keep].copy()
    if len(rows):
        model, tokenizer = load_stage_model(model_settings, base_path, adapter_dir)
        model.eval()
        conversations, cut, n_tokens = fit_to_context(
            model, tokenizer, rows.to_dict("records"), task, examples.to_dict("records"), settings
        )
        labels = task["labels"] if task["kind"] == "classify" else []
        predicted = predict(model, tokenizer, conversations, settings, labels, seed)
        predicted["text_cut"], predicted["prompt_tokens"] = cut, n_tokens
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
    for key, value in generation_settings(settings, seed).items():
        predictions[key] = value
    write_table(predictions, output)


def gather_predictions(shards: Sequence[str | Path], output: str | Path) -> None:
    """Concatenate one variant-stage's shard predictions into one table."""
    from locallm.tables import read_tables

    table = read_tables(list(shards))
    log.info("gathered %d predictions from %d shards", len(table), len(shards))
    write_table(table, output)
