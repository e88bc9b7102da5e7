"""Is a stage good enough? The pre-registered threshold against each CI's lower bound: no I/O.

evaluation.good_enough ({metric, threshold}) is set before the run. A variant x stage clears it
when the lower bound of its metric's 95% CI reaches the threshold; the decision names the cheapest
stage that does, so a user fine-tunes only when asking the base model is not enough.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

GoodEnough = dict[str, Any]  # evaluation.good_enough: {metric, threshold}; threshold null = unset

# Stages from cheapest to dearest: no training < a longer prompt < SFT < SFT and DPO.
STAGE_COST = {"base": 0, "fewshot": 1, "sft": 2, "dpo": 3}
STAGE_NAMES = {
    "base": "zero-shot (base model)",
    "fewshot": "few-shot (base model, solved examples in the prompt)",
    "sft": "supervised fine-tuning (SFT)",
    "dpo": "SFT then preference tuning (DPO)",
}


def is_set(good_enough: GoodEnough | None) -> bool:
    """True when a threshold was set before the run."""
    return bool(good_enough) and good_enough["threshold"] is not None


def mark_good_enough(metrics: pd.DataFrame, good_enough: GoodEnough | None) -> pd.DataFrame:
    """The metrics table with `threshold` and `good_enough` on each model's row of the metric.

    Other rows (other metrics, baselines) leave both empty. Without a threshold, unchanged.
    """
    if not is_set(good_enough):
        return metrics
    rows = (metrics["metric"] == good_enough["metric"]) & (metrics["variant"] != "baseline")
    marked = metrics.assign(
        threshold=pd.Series(pd.NA, index=metrics.index, dtype="Float64"),
        good_enough=pd.Series(pd.NA, index=metrics.index, dtype="boolean"),
    )
    marked.loc[rows, "threshold"] = float(good_enough["threshold"])
    marked.loc[rows, "good_enough"] = metrics.loc[rows, "ci_low"] >= good_enough["threshold"]
    return marked


def cheapest_good_enough(marked: pd.DataFrame) -> pd.DataFrame:
    """The rows of the cheapest stage that clears the threshold (one per variant that does)."""
    if "good_enough" not in marked:
        return marked.iloc[0:0]
    cleared = marked[marked["good_enough"].fillna(False).astype(bool)]
    if cleared.empty:
        return cleared
    cost = cleared["stage"].map(STAGE_COST)
    return cleared[cost == cost.min()]


def decision_markdown(marked: pd.DataFrame, good_enough: GoodEnough | None) -> str:
    """results/eval/decision.md: per variant x stage whether it clears, and the cheapest stage."""
    lines = ["# Is it good enough?", ""]
    if not is_set(good_enough):
        lines += [
            "No definition of good enough was set before the run (`evaluation.good_enough."
            "threshold` is null), so no decision is made. Set, for example, "
            "`evaluation.good_enough: {metric: macro_f1, threshold: 0.70}` before running, and "
            "report it as pre-registered.",
        ]
        return "\n".join(lines) + "\n"
    metric, threshold = good_enough["metric"], float(good_enough["threshold"])
    lines += [
        f"Definition set before the run: the lower bound of the 95% CI (groups resampled) of "
        f"**{metric}** is at least **{threshold:g}**.",
        "",
        f"| variant | stage | {metric} | 95% CI | good enough |",
        "|---|---|---|---|---|",
    ]
    rows = marked[marked["good_enough"].notna()]
    rows = rows.assign(_cost=rows["stage"].map(STAGE_COST).fillna(9))
    for _, row in rows.sort_values(["variant", "_cost"], kind="stable").iterrows():
        verdict = "yes" if row["good_enough"] else "no"
        lines.append(
            f"| {row['variant']} | {row['stage']} | {row['value']:.3f} | "
            f"{row['ci_low']:.3f} to {row['ci_high']:.3f} | {verdict} |"
        )
    lines.append("")
    best = cheapest_good_enough(marked)
    if best.empty:
        lines.append(
            f"**No stage is good enough**: no variant x stage has a {metric} CI lower bound of "
            f"{threshold:g} or more. More training, a larger base model or a clearer task "
            "definition may help; the evidence does not support using these predictions as "
            "they stand."
        )
    else:
        stage = best["stage"].iloc[0]
        variants = ", ".join(best["variant"].astype(str))
        name = STAGE_NAMES.get(stage, stage)
        lines.append(
            f"**The cheapest stage that is good enough: {stage}** ({name}), "
            f"variant(s) {variants}. Stages are ordered by cost: base < fewshot < sft < dpo."
        )
    return "\n".join(lines) + "\n"
