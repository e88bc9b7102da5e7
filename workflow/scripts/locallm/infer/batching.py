"""Batches for inference: length-sorted, sized by tokens, left-padded; and a progress heartbeat."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import torch

from locallm.logs import get_logger

log = get_logger(__name__)

PROGRESS_SECONDS = 30.0  # inference logs rows done and rows/s at least this often


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (padding waste is smallest).

    Longest first also makes the first batch the one that runs out of memory, if any does.
    """
    if batch_size < 1:
        raise ValueError(f"config inference.batch_size must be >= 1, got {batch_size}")
    order = _longest_first(lengths)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def token_batches(
    lengths: Sequence[int],
    batch_tokens: int | None,
    *,
    extra_tokens: int = 0,
    max_rows: int | None = None,
) -> list[list[int]]:
    """Length-sorted batches (longest first) filled while rows x padded width stays in budget.

    The padded width of a batch is its first (longest) row plus `extra_tokens` (the tokens each row
    grows by, e.g. generated ones). A row longer than the budget on its own runs alone.
    `max_rows` caps the rows of a batch as well; `batch_tokens` None sets no token budget.
    """
    if batch_tokens is not None and batch_tokens < 1:
        raise ValueError(f"config inference.batch_tokens must be >= 1, got {batch_tokens}")
    batches: list[list[int]] = []
    for index in _longest_first(lengths):
        if batches:
            batch = batches[-1]
            width = lengths[batch[0]] + extra_tokens
            full = max_rows is not None and len(batch) >= max_rows
            fits = batch_tokens is None or (len(batch) + 1) * width <= batch_tokens
            if fits and not full:
                batch.append(index)
                continue
        batches.append([index])
    return batches


def _longest_first(lengths: Sequence[int]) -> list[int]:
    # A stable sort keeps equal-length rows in input order, so batches are deterministic.
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])


def pad_token_id(tokenizer) -> int:
    """The pad id; a tokenizer without one is refused (the model half adds and saves it)."""
    if tokenizer.pad_token_id is None:
        raise ValueError(
            "the tokenizer has no pad token; the model stage should have added one "
            "(locallm.model.loading saves a pad token distinct from EOS)"
        )
    return tokenizer.pad_token_id


def left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded input ids and attention mask for a batch of token lists."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(seq)
            mask[row, width - len(seq) :] = 1
    return ids, mask


def model_device(model) -> torch.device:
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
