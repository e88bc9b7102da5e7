"""How jobs share a small machine: the threads of a job, and which ready job starts first.

On a 2-core laptop the demo's jobs after bootstrap_base are about twice the work of its longest
chain (tokenize, the full variant's sft and dpo, their inference, evaluate), so the two cores must
stay busy and that chain must never wait for a core; docs/performance.md replays a run both ways.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from locallm.config import tokenization_id, variant_settings


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


def chain_priority(variants: Iterable[Mapping[str, Any]]) -> int:
    """Snakemake `priority` of a training job (tokenize, sft, dpo) of `variants` (their settings):
    the optimiser steps of the longest of their chains, so that of two ready jobs the one on the
    longest chain starts first. Every other job keeps priority 0 and fills the free cores.

    Steps stand in for time: within one demo the variants share a base and a sequence length, and a
    step of each method costs about the same on a tiny model (docs/performance.md). Inference jobs
    get no priority: held back, they pile up at the end, where one core runs them while evaluate
    waits (tried: 378 s against 365 s in the replay of docs/performance.md).
    """
    return max((chain_steps(settings) for settings in variants), default=0)


def training_priority(config: Mapping[str, Any], wildcards: Mapping[str, str]) -> int:
    """`chain_priority` of a tokenize, sft or dpo job, from its wildcards: its `variant`, or for a
    tokenize job its `tokenization`, shared by every variant that tokenizes alike."""
    if "variant" in wildcards:
        variants = [wildcards["variant"]]
    else:
        variants = [
            v for v in config["variants"] if tokenization_id(config, v) == wildcards["tokenization"]
        ]
    return chain_priority([variant_settings(config, v) for v in variants])
