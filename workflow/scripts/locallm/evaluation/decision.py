"""Is a stage good enough? The pre-registered threshold against each CI's lower bound: no I/O.

evaluation.good_enough ({metric, threshold}) is set before the run. A variant x stage clears it
when the lower bound of its metric's 95% CI reaches the threshold; the decision names the cheapest
that does, so a user fine-tunes only when asking the base model is not enough. Cost is the stage
first (no training < a longer prompt < SFT < SFT and DPO), then the model's parameters (what every
later prediction costs). A stage whose prompts cut the passage says so wherever it is ranked.
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


def cost_order(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows from cheapest to dearest: by stage, then by the model's parameters (when recorded)."""
    params = rows["model_params"] if "model_params" in rows else pd.Series(0, index=rows.index)
    keyed = rows.assign(_stage=rows["stage"].map(STAGE_COST).fillna(9), _params=params.fillna(0))
    return keyed.sort_values(["_stage", "_params"], kind="stable").drop(
        columns=["_stage", "_params"]
    )


def cheapest_good_enough(marked: pd.DataFrame) -> pd.DataFrame:
    """The rows of the cheapest stage that clears the threshold (one per variant that does),
    smallest model first."""
    if "good_enough" not in marked:
        return marked.iloc[0:0]
    cleared = marked[marked["good_enough"].fillna(False).astype(bool)]
    if cleared.empty:
        return cleared
    cost = cleared["stage"].map(STAGE_COST)
    return cost_order(cleared[cost == cost.min()])


def _value(row: pd.Series, column: str) -> float | None:
    value = row.get(column)
    return None if value is None or pd.isna(value) else float(value)


def passage_seen(row: pd.Series) -> str:
    """How much of the passages a row's stage saw, e.g. `100%` or `71%, cut in 40% of rows`."""
    seen, cut = _value(row, "text_seen"), _value(row, "text_cut_share")
    if seen is None:
        return "-"
    return f"{seen:.0%}" + (f", cut in {cut:.0%} of rows" if cut else "")


def parameters(row: pd.Series) -> str:
    params = _value(row, "model_params")
    return "-" if params is None else f"{params / 1e6:.1f}"


def decision_markdown(marked: pd.DataFrame, good_enough: GoodEnough | None) -> str:
    """results/eval/decision.md: per variant x stage whether it clears, and the cheapest one."""
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
        "`passage seen`: the mean share of each test passage's tokens in its prompt; a stage "
        "whose prompts had to cut passages to fit the model's context was judged on less text.",
        "",
        f"| variant | stage | parameters (M) | {metric} | 95% CI | passage seen | good enough |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = marked[marked["good_enough"].notna()]
    rows = rows.assign(_cost=rows["stage"].map(STAGE_COST).fillna(9))
    for _, row in rows.sort_values(["variant", "_cost"], kind="stable").iterrows():
        verdict = "yes" if row["good_enough"] else "no"
        lines.append(
            f"| {row['variant']} | {row['stage']} | {parameters(row)} | {row['value']:.3f} | "
            f"{row['ci_low']:.3f} to {row['ci_high']:.3f} | {passage_seen(row)} | {verdict} |"
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
        first = best.iloc[0]
        stage = first["stage"]
        variants = ", ".join(f"{r['variant']} ({parameters(r)} M)" for _, r in best.iterrows())
        name = STAGE_NAMES.get(stage, stage)
        lines.append(
            f"**The cheapest that is good enough: {first['variant']} at stage {stage}** ({name}); "
            f"at this stage: {variants}. Cost is ordered by stage (base < fewshot < sft < dpo), "
            "then by the model's parameters (M)."
        )
        cut = _value(first, "text_cut_share")
        if cut:
            lines += [
                "",
                f"Note: its prompts cut the passage to fit the model's context in {cut:.0%} of "
                f"rows (passage seen: {passage_seen(first)}); its score is for shortened texts.",
            ]
    return "\n".join(lines) + "\n"
