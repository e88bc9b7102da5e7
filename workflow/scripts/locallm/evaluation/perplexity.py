"""The perplexity job: per-text negative log-likelihood of one stage on the validation split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from locallm.evaluation.metrics import perplexity
from locallm.infer.scoring import text_log_likelihoods
from locallm.logs import get_logger
from locallm.tables import read_table, write_table

log = get_logger(__name__)


def perplexity_stage(
    *,
    table: str | Path,
    output: str | Path,
    settings: dict[str, Any],
    model_settings: dict[str, Any],
    seed: int,
    variant: str,
    stage: str,
    base_dir: str | Path | None,
    adapter_dir: str | Path | None,
    threads: int = 1,
) -> None:
    """Per-text negative log-likelihood of one stage on a seeded sample of the validation split."""
    from locallm.model.loading import load_stage_model, resolve_base_path

    torch.set_num_threads(max(1, threads))
    texts = read_table(table, columns=["doc_id", "group_id", "text"])
    cap = settings["perplexity_max_texts"]
    if cap is not None and len(texts) > cap:
        texts = texts.sample(n=cap, random_state=seed).sort_index()
    result = texts[["doc_id", "group_id"]].reset_index(drop=True)
    result["nll"], result["n_tokens"] = np.zeros(len(texts)), np.zeros(len(texts), dtype=int)
    if len(texts):
        base_path = resolve_base_path(model_settings, built_dir=base_dir)
        model, tokenizer = load_stage_model(model_settings, base_path, adapter_dir)
        nll, n_tokens = text_log_likelihoods(
            model,
            tokenizer,
            texts["text"].tolist(),
            batch_size=settings["perplexity_batch_size"],
            max_tokens=settings["perplexity_max_tokens"],
        )
        result["nll"], result["n_tokens"] = nll, n_tokens
    result["variant"], result["stage"] = variant, stage
    ppl = perplexity(result["nll"].to_numpy(), result["n_tokens"].to_numpy())
    log.info("%s/%s: perplexity %.2f on %d texts", variant, stage, ppl, len(result))
    write_table(result, output)
