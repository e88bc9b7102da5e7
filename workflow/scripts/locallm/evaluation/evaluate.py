"""The evaluate job: read predictions and perplexities, compute metrics, write tables and plots.

It loads no model (perplexity is computed by locallm.evaluation.perplexity, with inference).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # jobs run without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from locallm.evaluation.decision import STAGE_COST, decision_markdown, mark_good_enough  # noqa: E402
from locallm.evaluation.metrics import (  # noqa: E402
    UNMATCHED_NAME,
    bootstrap_groups,
    confusion,
    encode,
    evaluate_labels,
    expected_calibration_error,
    metric_rows,
    most_frequent_train_label,
    perplexity,
    uniform_baseline,
)
from locallm.logs import get_logger, warn  # noqa: E402
from locallm.tables import (  # noqa: E402
    read_table,
    save_figure,
    write_text,
    write_tsv,
)

log = get_logger(__name__)

HEADLINE = ["accuracy", "accuracy_over_majority", "macro_f1", "cohen_kappa", "krippendorff_alpha"]


# --- evaluate -------------------------------------------------------------------------------------


def _confidence(predictions: pd.DataFrame, labels: Sequence[str]) -> np.ndarray:
    """The model's confidence in its answer: top label probability, or the vote share."""
    prob_columns = [f"prob_{label}" for label in labels]
    if all(c in predictions for c in prob_columns):
        return predictions[prob_columns].to_numpy().max(axis=1)
    return predictions["vote_share"].to_numpy(dtype=float)


def _predicted(predictions: pd.DataFrame, labels: Sequence[str]) -> np.ndarray:
    """Label indices of the parsed answers (an unmatched answer gets its own index)."""
    parsed = predictions["parsed_label"].astype(object).where(predictions["parsed_label"].notna())
    return encode(parsed.tolist(), labels, allow_unmatched=True)


def evaluate_model(
    predictions: pd.DataFrame,
    labels: Sequence[str],
    label_column: str,
    settings: dict[str, Any],
    seed: int,
    majority: int | None = None,
    zero_shot: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Metric rows, confusion counts and reliability table of one variant x stage (and, given the
    variant's zero-shot predictions, the paired accuracy difference against them)."""
    variant, stage = predictions["variant"].iloc[0], predictions["stage"].iloc[0]
    gold = encode(predictions[label_column].tolist(), labels, allow_unmatched=False)
    predicted = _predicted(predictions, labels)
    reference = None
    if zero_shot is not None:
        if sorted(zero_shot["doc_id"]) != sorted(predictions["doc_id"]):
            raise ValueError(
                f"{variant}/{stage}: the zero-shot (base) predictions cover other rows; "
                "run both stages on the same inference input"
            )
        aligned = zero_shot.set_index("doc_id").loc[predictions["doc_id"]].reset_index()
        reference = _predicted(aligned, labels)
    confidence = _confidence(predictions, labels)
    point, intervals = evaluate_labels(
        gold,
        predicted,
        predictions["group_id"].to_numpy(),
        labels,
        confidence=confidence,
        calibration_bins=settings["calibration_bins"],
        majority=majority,
        zero_shot=reference,
        n_boot=settings["bootstrap"],
        seed=seed,
    )
    metrics = metric_rows(point, intervals, len(predictions), variant=variant, stage=stage)
    metrics = metrics.assign(**prompt_coverage(predictions))
    names = [*labels, UNMATCHED_NAME]
    cm = confusion(gold, predicted, len(labels))
    counts = pd.DataFrame(
        [
            {
                "variant": variant,
                "stage": stage,
                "gold": names[g],
                "predicted": names[p],
                "count": int(cm[g, p]),
            }
            for g in range(len(labels))
            for p in range(len(names))
        ]
    )
    _, reliability = expected_calibration_error(
        confidence, gold == predicted, settings["calibration_bins"]
    )
    reliability.insert(0, "stage", stage)
    reliability.insert(0, "variant", variant)
    return metrics, counts, reliability


def prompt_coverage(predictions: pd.DataFrame) -> dict[str, float]:
    """How much of the passages one variant x stage saw, and its model's size, for metrics.tsv:
    `text_seen` (mean share of each passage's tokens in its prompt), `text_cut_share` (share of
    rows whose passage was cut to fit the context) and `model_params`. Empty for predictions
    written before these were recorded."""
    coverage = {}
    if "text_seen" in predictions:
        coverage["text_seen"] = float(predictions["text_seen"].mean())
    if "text_cut" in predictions:
        coverage["text_cut_share"] = float(predictions["text_cut"].astype(bool).mean())
    if "model_params" in predictions:
        coverage["model_params"] = int(predictions["model_params"].iloc[0])
    return coverage


def model_label(row: pd.Series) -> str:
    """`variant / stage`, with the share of rows whose passage was cut when any was: a stage that
    saw less of the text is never shown beside the others as if it saw all of it."""
    label = f"{row['variant']} / {row['stage']}"
    cut = row.get("text_cut_share")
    if cut is not None and pd.notna(cut) and cut > 0:
        label += f" (passage cut in {cut:.0%})"
    return label


def baseline_rows(
    test: pd.DataFrame,
    train_labels: Sequence[str],
    labels: Sequence[str],
    label_column: str,
    settings: dict[str, Any],
    seed: int,
) -> pd.DataFrame:
    """Majority-class (from the train split) and uniform-random baselines, variant `baseline`."""
    gold = encode(test[label_column].tolist(), labels, allow_unmatched=False)
    groups = test["group_id"].to_numpy()
    n_boot = settings["bootstrap"]
    train = encode(list(train_labels), labels, allow_unmatched=False)
    majority = np.full(len(gold), most_frequent_train_label(train, len(labels)))
    point, intervals = evaluate_labels(gold, majority, groups, labels, n_boot=n_boot, seed=seed)
    rows = [metric_rows(point, intervals, len(gold), variant="baseline", stage="majority")]
    point, intervals = uniform_baseline(gold, groups, labels, n_boot=n_boot, seed=seed)
    rows.append(metric_rows(point, intervals, len(gold), variant="baseline", stage="uniform"))
    return pd.concat(rows, ignore_index=True)


def perplexity_rows(table: pd.DataFrame, settings: dict[str, Any], seed: int) -> pd.DataFrame:
    """Token-weighted perplexity of one stage with a group-bootstrap CI."""
    nll, n_tokens = table["nll"].to_numpy(), table["n_tokens"].to_numpy()

    def statistic(rows: np.ndarray) -> dict[str, float]:
        return {"perplexity": perplexity(nll[rows], n_tokens[rows])}

    intervals = bootstrap_groups(
        table["group_id"].to_numpy(), statistic, settings["bootstrap"], seed
    )
    return metric_rows(
        statistic(np.arange(len(table))),
        intervals,
        len(table),
        variant=table["variant"].iloc[0],
        stage=table["stage"].iloc[0],
    )


def _order(frame: pd.DataFrame) -> pd.DataFrame:
    """Variants in config order, stages base -> fewshot -> sft -> dpo, baselines last."""
    key = frame["stage"].map(STAGE_COST).fillna(9)
    return (
        frame.assign(_baseline=frame["variant"] == "baseline", _stage=key)
        .sort_values(["_baseline", "variant", "_stage"], kind="stable")
        .drop(columns=["_baseline", "_stage"])
    )


def plot_comparison(metrics: pd.DataFrame) -> plt.Figure:
    """Headline metrics with 95% CIs per variant x stage; baselines as vertical lines."""
    models = metrics[metrics["variant"] != "baseline"]
    models = models.assign(model=models.apply(model_label, axis=1))
    baselines = metrics[metrics["variant"] == "baseline"]
    names = list(dict.fromkeys(models["model"]))
    fig, axes = plt.subplots(
        1, len(HEADLINE), figsize=(4 * len(HEADLINE), 1.5 + 0.45 * len(names)), sharey=True,
        squeeze=False, layout="constrained",
    )  # fmt: skip
    for ax, metric in zip(axes[0], HEADLINE, strict=True):
        rows = models[models["metric"] == metric].set_index("model")
        rows = rows.reindex(names)
        y = np.arange(len(names))
        err = np.vstack([rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]])
        ax.errorbar(rows["value"], y, xerr=np.abs(np.nan_to_num(err)), fmt="o", capsize=3)
        lines = baselines[baselines["metric"] == metric]
        for style, (_, base) in zip(["--", ":"], lines.iterrows(), strict=False):
            ax.axvline(
                base["value"], linestyle=style, color="grey", label=f"{base['stage']} baseline"
            )
        if metric == "accuracy_over_majority":
            ax.axvline(0, linestyle="--", color="grey")  # above 0: beats the majority baseline
        ax.set_title(metric)
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].legend(loc="lower left", fontsize="small")
    fig.suptitle("Agreement with gold labels (95% CI, groups resampled)")
    return fig


def _grid(keys: list[tuple[str, str]]) -> tuple[plt.Figure, dict[tuple[str, str], plt.Axes]]:
    variants = list(dict.fromkeys(v for v, _ in keys))
    stages = sorted(dict.fromkeys(s for _, s in keys), key=lambda s: STAGE_COST.get(s, 9))
    fig, axes = plt.subplots(
        len(variants), len(stages), squeeze=False, sharey=True, layout="constrained",
        figsize=(3.6 * len(stages), 3.2 * len(variants)),
    )  # fmt: skip
    cells = {(v, s): axes[i][j] for i, v in enumerate(variants) for j, s in enumerate(stages)}
    for key, ax in cells.items():
        if key not in keys:
            ax.set_axis_off()
    return fig, cells


def plot_confusions(counts: pd.DataFrame) -> plt.Figure:
    """One confusion matrix (rows gold, columns predicted) per variant x stage."""
    keys = list(dict.fromkeys(zip(counts["variant"], counts["stage"], strict=True)))
    fig, cells = _grid(keys)
    for (variant, stage), table in counts.groupby(["variant", "stage"], sort=False):
        matrix = table.pivot(index="gold", columns="predicted", values="count")
        matrix = matrix.reindex(
            index=list(dict.fromkeys(table["gold"])),
            columns=list(dict.fromkeys(table["predicted"])),
        )
        ax = cells[(variant, stage)]
        values = matrix.to_numpy()
        ax.imshow(values, cmap="Blues")
        for (i, j), value in np.ndenumerate(values):
            dark = value > values.max() / 2
            ax.text(j, i, int(value), ha="center", va="center", color="white" if dark else "black")
        ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=30, ha="right")
        ax.set_yticks(range(matrix.shape[0]), matrix.index)
        ax.set_title(f"{variant} / {stage}")
    fig.supxlabel("predicted")
    fig.supylabel("gold")
    return fig


def plot_calibration(reliability: pd.DataFrame, metrics: pd.DataFrame) -> plt.Figure:
    """Reliability diagrams: accuracy against confidence per bin (its passages above the bar), the
    diagonal is perfect."""
    keys = list(dict.fromkeys(zip(reliability["variant"], reliability["stage"], strict=True)))
    fig, cells = _grid(keys)
    ece = metrics[metrics["metric"] == "ece"].set_index(["variant", "stage"])["value"]
    for (variant, stage), table in reliability.groupby(["variant", "stage"], sort=False):
        ax = cells[(variant, stage)]
        filled = table[table["n"] > 0]
        bars = ax.bar(
            filled["lower"],
            filled["accuracy"],
            width=filled["upper"] - filled["lower"],
            align="edge",
            edgecolor="black",
            alpha=0.7,
        )
        # Passages per bar: a bar of 2 passages says little, and the reader must see that.
        ax.bar_label(bars, labels=[f"{n}" for n in filled["n"]], fontsize=7, padding=1)
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(f"{variant} / {stage}: ECE {ece.get((variant, stage), np.nan):.3f}")
    fig.supxlabel("confidence (top label probability or vote share)")
    fig.supylabel("accuracy (number of passages above each bar)")
    return fig


def evaluate(
    *,
    predictions: Sequence[str | Path],
    perplexities: Sequence[str | Path],
    train: str | Path,
    task: dict[str, Any],
    settings: dict[str, Any],
    seed: int,
    metrics_tsv: str | Path,
    confusion_tsv: str | Path,
    reliability_tsv: str | Path,
    comparison_png: str | Path,
    confusion_png: str | Path,
    calibration_png: str | Path,
    decision_md: str | Path,
) -> None:
    """Every variant x stage against the gold labels, with baselines, perplexities, a decision."""
    labels, label_column = task["labels"], task["label_column"]
    train_labels = read_table(train, columns=[label_column])[label_column]
    train_gold = encode(train_labels.tolist(), labels, allow_unmatched=False)
    majority = most_frequent_train_label(train_gold, len(labels))
    metrics, counts, reliability = [], [], []
    test = None
    tables = {path: read_table(path) for path in predictions}
    # Each variant's zero-shot predictions: the later stages are compared with them, row by row.
    zero_shot = {
        t["variant"].iloc[0]: t for t in tables.values() if len(t) and t["stage"].iloc[0] == "base"
    }
    for path, table in tables.items():
        if table.empty:
            warn(log, f"{path}: no predictions; left out of the evaluation")
            continue
        if label_column not in table:
            raise ValueError(f"{path}: no gold label column {label_column!r} (task.label_column)")
        variant, stage = table["variant"].iloc[0], table["stage"].iloc[0]
        reference = zero_shot.get(variant) if stage != "base" else None
        m, c, r = evaluate_model(
            table, labels, label_column, settings, seed, majority, zero_shot=reference
        )
        metrics.append(m)
        counts.append(c)
        reliability.append(r)
        test = table if test is None else test
    if test is None:
        raise ValueError("no predictions to evaluate: every predictions table is empty")
    metrics.append(baseline_rows(test, train_labels, labels, label_column, settings, seed))
    for path in perplexities:
        table = read_table(path)
        if len(table):
            metrics.append(perplexity_rows(table, settings, seed))
    table = _order(pd.concat(metrics, ignore_index=True))
    table = mark_good_enough(table, settings["good_enough"])
    write_tsv(table, metrics_tsv)
    write_text(decision_markdown(table, settings["good_enough"]), decision_md)
    counts, reliability = pd.concat(counts), pd.concat(reliability)
    write_tsv(counts, confusion_tsv)
    write_tsv(reliability, reliability_tsv)
    save_figure(plot_comparison(table), comparison_png)
    save_figure(plot_confusions(counts), confusion_png)
    save_figure(plot_calibration(reliability, table), calibration_png)
    headline = table[table["metric"].isin(["accuracy", "macro_f1"])]
    log.info("headline metrics:\n%s", headline.to_string(index=False))
