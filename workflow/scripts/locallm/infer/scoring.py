"""Likelihoods under a model: each label as the answer to a prompt (classify), and whole texts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from locallm.infer.batching import (
    Progress,
    left_pad,
    length_sorted_batches,
    model_device,
    pad_token_id,
    token_batches,
)
from locallm.task.context import render_prompt


def label_continuations(tokenizer, conversation: list[dict], labels: Sequence[str]) -> list[str]:
    """The text the chat template puts after the prompt when the assistant answers each label.

    It includes the end-of-turn marker (EOS): scored with it, a label that is a prefix of another
    ("Democratic" vs "Democratic-Republican") is not mistaken for the longer one's beginning.
    """
    prompt = render_prompt(tokenizer, conversation)
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


def shared_prefix(token_lists: Sequence[Sequence[int]]) -> list[int]:
    """The longest run of tokens every list starts with, less at least one token of each list
    (the last prompt token must be run to give the first label token's logits)."""
    if not token_lists:
        return []
    first, shortest = token_lists[0], min(len(t) for t in token_lists)
    length = 0
    while length < shortest - 1 and all(t[length] == first[length] for t in token_lists):
        length += 1
    return list(first[:length])


def right_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input ids and attention mask (after a shared prefix, whose cache every row
    continues at the same position, padding must come last)."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def _cache_of(output):
    return output.cache if hasattr(output, "cache") else output.past_key_values


@torch.inference_mode()
def label_log_likelihoods(
    model,
    tokenizer,
    prompts: Sequence[str],
    continuations: Sequence[str],
    *,
    batch_tokens: int,
    max_rows: int | None = None,
    progress: Progress | None = None,
    prefix_cache: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Summed log-probability of each continuation after each prompt, and each one's token count.

    Each prompt is run once; its key/value cache is repeated for the labels, so scoring L labels
    costs one prompt pass plus L short continuation passes, not L full passes. Batches hold up to
    `batch_tokens` padded prompt tokens (and at most `max_rows` prompts, if given).
    With `prefix_cache`, the tokens all prompts begin with (system prompt, instruction, few-shot
    examples) are run once and their cache is copied into every batch, which then runs only each
    prompt's own remainder, padded on the right.
    Returns (log_likelihoods of shape (n_prompts, n_labels), token counts of shape (n_labels,)).
    """
    import copy

    pad_id = pad_token_id(tokenizer)
    device = model_device(model)
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

    prefix = shared_prefix(prompt_ids) if prefix_cache else []
    prefix_kv = None
    if prefix:
        prefix_kv = _cache_of(
            model(input_ids=torch.tensor([prefix], device=device), use_cache=True,
                  logits_to_keep=1)
        )  # fmt: skip
    own_ids = [p[len(prefix) :] for p in prompt_ids]
    scores = np.zeros((len(prompts), n_labels))
    for batch in token_batches([len(p) for p in own_ids], batch_tokens, max_rows=max_rows):
        b = len(batch)
        if prefix_kv is not None:
            ids, own_mask = right_pad([own_ids[i] for i in batch], pad_id)
            ids, own_mask = ids.to(device), own_mask.to(device)
            cache = copy.deepcopy(prefix_kv)
            cache.batch_repeat_interleave(b)
            mask = torch.cat([torch.ones((b, len(prefix)), dtype=torch.long, device=device),
                              own_mask], dim=1)  # fmt: skip
            positions = len(prefix) + torch.arange(ids.shape[1], device=device).expand(b, -1)
            # Only each row's last real token gives logits (one column per distinct length).
            last = own_mask.sum(-1) - 1
            kept, column = torch.unique(last, return_inverse=True)
            out = model(
                input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                use_cache=True, logits_to_keep=kept,
            )  # fmt: skip
            last_logits = out.logits[torch.arange(b, device=device), column]
        else:
            ids, mask = left_pad([prompt_ids[i] for i in batch], pad_id)
            ids, mask = ids.to(device), mask.to(device)
            # Positions count real tokens only, as generate() does with left padding.
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            out = model(
                input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                logits_to_keep=1,
            )  # fmt: skip
            last_logits = out.logits[:, -1, :]
        first = torch.log_softmax(last_logits.float(), dim=-1)  # (B, V)
        # log p(first token of each label | prompt): (B, L)
        total = first[:, cont[:, 0].to(device)]
        if longest > 1:
            cache = _cache_of(out)
            cache.batch_repeat_interleave(n_labels)
            step_ids = cont[:, :-1].repeat(b, 1).to(device)  # (B*L, T-1), row = prompt-major
            step_mask = cont_mask[:, :-1].repeat(b, 1).to(device)
            full_mask = torch.cat([mask.repeat_interleave(n_labels, 0), step_mask], dim=1)
            # The labels follow each prompt's real tokens (prefix included): mask.sum.
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
            progress.advance(b)
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
    pad_id = pad_token_id(tokenizer)
    device = model_device(model)
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
