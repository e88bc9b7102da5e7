"""Which variant x stage annotates: the cheapest that decision.md found good enough, or one named.

`annotate.use: decision` follows the pre-registered decision; when no stage cleared the bar (or no
bar was set) the run stops here with the best stage and its interval, and how to name one anyway.
`annotate.use: {variant, stage}` names one; if it missed the bar, every output says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from locallm.evaluation.decision import (
    STAGE_COST,
    cheapest_good_enough,
    is_set,
    mark_good_enough,
)
from locallm.logs import get_logger, warn
from locallm.tables import write_json

log = get_logger(__name__)


class NothingGoodEnough(ValueError):
    """annotate.use is `decision` and the decision names no stage."""


def _cleared(value: Any) -> bool | None:
    """metrics.tsv's good_enough cell as True, False or None (not assessed)."""
    if pd.isna(value):
        return None
    return str(value).strip().lower() in ("true", "1")


def _models(metrics: pd.DataFrame) -> pd.DataFrame:
    """The models' rows of metrics.tsv, re-marked below with the configured bar (the same
    function evaluate uses), so the choice never disagrees with the settings."""
    return metrics[metrics["variant"] != "baseline"].drop(
        columns=["threshold", "good_enough"], errors="ignore"
    )


def metric_row(metrics: pd.DataFrame, variant: str, stage: str, metric: str) -> pd.Series | None:
    rows = metrics[
        (metrics["variant"] == variant)
        & (metrics["stage"] == stage)
        & (metrics["metric"] == metric)
    ]
    return rows.iloc[0] if len(rows) else None


def _choice(row: pd.Series | None, variant: str, stage: str, metric: str, chosen_by: str) -> dict:
    choice = {"variant": variant, "stage": stage, "chosen_by": chosen_by, "metric": metric}
    for key in ("value", "ci_low", "ci_high", "threshold"):
        value = None if row is None or key not in row or pd.isna(row[key]) else float(row[key])
        choice[key] = value
    choice["good_enough"] = (
        None if row is None or "good_enough" not in row else _cleared(row["good_enough"])
    )
    return choice


def best_model(rows: pd.DataFrame) -> pd.Series:
    """The row with the highest CI lower bound (then value; then the cheaper stage)."""
    ordered = rows.assign(_cost=rows["stage"].map(STAGE_COST).fillna(9)).sort_values(
        ["ci_low", "value", "_cost", "variant"],
        ascending=[False, False, True, True],
        kind="stable",
    )
    return ordered.iloc[0]


def choose_stage(
    metrics: pd.DataFrame | None, use: str | dict[str, str], good_enough: dict[str, Any]
) -> dict[str, Any]:
    """The variant x stage to annotate with, and the evidence for it (see the module docstring)."""
    metric = good_enough["metric"]
    if use != "decision":
        variant, stage = use["variant"], use["stage"]
        marked = None if metrics is None else mark_good_enough(_models(metrics), good_enough)
        row = None if marked is None else metric_row(marked, variant, stage, metric)
        choice = _choice(row, variant, stage, metric, "named in annotate.use")
        if choice["good_enough"] is False:
            warn(
                log,
                f"annotate.use names {variant}/{stage}, which missed the pre-registered bar "
                f"({metric} CI lower bound {choice['ci_low']:.3f} < {choice['threshold']:g}); "
                "every annotation output marks it so",
            )
        return choice
    how = (
        "name one anyway with `annotate.use: {variant: NAME, stage: STAGE}` (every output will "
        "say it missed the bar), or improve the model"
    )
    if not is_set(good_enough):
        raise NothingGoodEnough(
            "annotate.use is `decision`, but no definition of good enough was set "
            "(evaluation.good_enough.threshold is null), so no stage was chosen; set the "
            f"threshold before the run, or {how}"
        )
    if metrics is None:
        raise NothingGoodEnough("annotate.use is `decision`, but there is no metrics table")
    models = _models(metrics)
    models = models[models["metric"] == metric]
    cleared = cheapest_good_enough(mark_good_enough(models, good_enough))
    if cleared.empty:
        best = best_model(models)
        raise NothingGoodEnough(
            f"no stage is good enough (eval/decision.md): no variant x stage has a "
            f"{metric} 95% CI lower bound of {good_enough['threshold']:g} or more. The best is "
            f"{best['variant']}/{best['stage']}: {metric} {best['value']:.3f} (95% CI "
            f"{best['ci_low']:.3f} to {best['ci_high']:.3f}). To annotate with it anyway, {how}"
        )
    # Variants that clear the bar at the same cheapest stage: the one with the best lower bound.
    best = best_model(cleared)
    return _choice(best, best["variant"], best["stage"], metric, "decision (eval/decision.md)")


def write_choice(
    *,
    metrics: str | Path | None,
    use: str | dict[str, str],
    good_enough: dict[str, Any],
    output: str | Path,
) -> None:
    """The choose_stage job: read metrics.tsv (when evaluated), write choice.json or refuse."""
    table = pd.read_csv(metrics, sep="\t") if metrics else None
    choice = choose_stage(table, use, good_enough)
    log.info("annotating with %s/%s, chosen by %s", choice["variant"], choice["stage"],
             choice["chosen_by"])  # fmt: skip
    write_json(choice, output)
