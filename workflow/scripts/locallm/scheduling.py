"""How jobs share a small machine: the threads of a job, and which ready job starts first.

On a 2-core laptop the demo's wall time is set by one chain of jobs (bootstrap_base, tokenize, the
longest variant's sft and dpo, its inference, evaluate); the other jobs can fill the second core
beside it, if the chain is never kept waiting for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Stages whose models no training job waits on: their inference can run whenever a core is free.
UNTRAINED_STAGES = ("base", "fewshot")


def job_threads(setting: int | str, cores: int | None, jobs_at_once: int) -> int:
    """Threads of a job: a number from the config as it is; `auto` shares `cores` (Snakemake's
    --cores) among the `jobs_at_once` independent jobs of its kind, at least 1 each, so that they
    overlap on a small machine while a lone job gets every core. Without --cores (a cluster run)
    auto is 1.
    """
    if setting != "auto":
        return int(setting)
    return max(1, (cores or 1) // jobs_at_once)


def chain_steps(settings: Mapping[str, Any]) -> int:
    """Optimiser steps of a variant's training chain: SFT, then DPO on top of it."""
    return settings["max_steps"] + settings["dpo_max_steps"]


def chain_priority(variants: Iterable[Mapping[str, Any]], stage: str | None = None) -> int:
    """Snakemake `priority` of a job that feeds or follows the training of `variants` (their
    settings): the optimiser steps of the longest training chain through it, so that of two ready
    jobs the one on the longest chain (the critical path) starts first. A job of the `sft` stage
    (its inference, its perplexity) counts SFT's steps only: the DPO job beside it is further from
    the end. A job without a stage (tokenize, sft, dpo) counts the whole chain. 0 for inference of
    an untrained stage (`base`, `fewshot`), which only evaluate waits on.

    Steps stand in for time: within one demo the variants share a base and a sequence length, and
    a step of each method costs about the same on a tiny model (docs/performance.md).
    """
    if stage in UNTRAINED_STAGES:
        return 0
    if stage == "sft":
        return max((settings["max_steps"] for settings in variants), default=0)
    return max((chain_steps(settings) for settings in variants), default=0)
