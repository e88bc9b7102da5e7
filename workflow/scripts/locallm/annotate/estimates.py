"""The estimate job: each label's share, overall and by metadata, three ways side by side.

`model`: the share of the model's labels in the annotated population (biased where the model errs);
`gold`: the share in the gold sample alone (the test split's passages; unbiased, wide);
`prediction_powered`: the model's share corrected by its error on the gold sample (locallm.annotate
.estimator). Both corrections assume the gold sample is a random sample (of groups) of the annotated
population; for passages from the user's own files it is not, and the table says so.
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

from locallm.annotate.estimator import METHODS, label_shares  # noqa: E402
from locallm.annotate.outputs import PROVENANCE  # noqa: E402
from locallm.data.clustering import share_bins  # noqa: E402
from locallm.evaluation.metrics import encode  # noqa: E402
from locallm.logs import get_logger, warn  # noqa: E402
from locallm.tables import read_table, save_figure, write_tsv  # noqa: E402

log = get_logger(__name__)

ALL = "all"  # the `by` of the overall shares
GOLD_SPLIT = "test"


def binned(values: pd.Series, column: str, width: float | None) -> pd.Series:
    """A metadata column as estimate groups: numeric columns cut into bins of `width` (as
    cluster.share_by is binned), other columns as they are."""
    if width is None or not pd.api.types.is_numeric_dtype(values):
        return values.astype("string").fillna("(missing)")
    return share_bins(values, {"share_bin": width, "share_by": column}).astype("string")


def population_note(passages: pd.DataFrame, sample_groups: int | None) -> str:
    """What population the estimates describe, in words (recorded on every row)."""
    origins = sorted(passages.loc[passages["sampled"], "origin"].unique())
    what = " and ".join(
        {"corpus": "the corpus's passages that passed the filters", "file": "the user's files"}[o]
        for o in origins
    )
    if sample_groups is not None:
        what += f", estimated from a seeded random sample of {sample_groups} groups"
    return what


def estimate_rows(
    population: pd.DataFrame,
    gold: pd.DataFrame,
    labels: Sequence[str],
    label_column: str | None,
    n_boot: int,
    seed: int,
) -> pd.DataFrame:
    """The three estimates of every label's share for one slice of the population."""
    predicted = encode(population["predicted_label"].tolist(), labels, allow_unmatched=True)
    if label_column is None or label_column not in gold:
        gold = gold.iloc[0:0]
    gold_pred = encode(gold["predicted_label"].tolist(), labels, allow_unmatched=True)
    gold_true = (
        encode(gold[label_column].tolist(), labels, allow_unmatched=False)
        if len(gold)
        else np.zeros(0, dtype=int)
    )
    # An unmatched answer (generate mode) counts as no label: an extra index, dropped below.
    n = len(labels) + 1
    table = label_shares(
        predicted, population["group_id"].astype(str).tolist(), gold_true, gold_pred,
        gold["group_id"].astype(str).tolist(), n, n_boot, seed,
    )  # fmt: skip
    table = table[table["label"] < len(labels)].copy()
    table["label"] = [labels[i] for i in table["label"]]
    table["n_passages"] = len(population)
    table["n_groups"] = population["group_id"].nunique()
    table["n_gold"] = len(gold)
    table["n_gold_groups"] = gold["group_id"].nunique()
    return table


def share_estimates(
    passages: pd.DataFrame,
    task: dict[str, Any],
    settings: dict[str, Any],
    n_boot: int,
    seed: int,
) -> pd.DataFrame:
    """estimates.tsv: by, value, label, method, estimate, ci_low, ci_high, counts, provenance."""
    labels, label_column = task["labels"], task["label_column"]
    population = passages[passages["sampled"]]
    gold = passages[(passages["split"] == GOLD_SPLIT) & (passages["origin"] == "corpus")]
    if label_column is not None and label_column in gold:
        gold = gold[gold[label_column].isin(labels)]
    if gold.empty:
        warn(log, "no gold-labelled test passages among the annotated: only the model's shares")
    slices = [(ALL, ALL, population, gold)]
    for column in settings["estimate_by"]:
        groups = binned(population[column], column, settings["estimate_bin"])
        gold_groups = binned(gold[column], column, settings["estimate_bin"])
        for value in sorted(groups.unique(), key=str):
            slices.append((column, value, population[groups == value], gold[gold_groups == value]))
    frames = []
    for by, value, rows, gold_rows in slices:
        table = estimate_rows(rows, gold_rows, labels, label_column, n_boot, seed)
        table.insert(0, "value", value)
        table.insert(0, "by", by)
        frames.append(table)
    estimates = pd.concat(frames, ignore_index=True)
    estimates["population"] = population_note(passages, settings["sample_groups"])
    # The gold sample is the corpus's test split; it stands for user files only if they were
    # drawn from the same population, which the workflow cannot know.
    estimates["gold_sample_of_population"] = bool((population["origin"] == "corpus").all())
    for column in [*PROVENANCE, "chosen_by", "stage_good_enough"]:
        estimates[column] = passages[column].iloc[0] if len(passages) else None
    return estimates


def plot_estimates(estimates: pd.DataFrame, labels: Sequence[str]) -> plt.Figure:
    """Each label's share (rows) by each `by` (columns), the three methods side by side."""
    bys = list(dict.fromkeys(estimates["by"]))
    fig, axes = plt.subplots(
        len(labels), len(bys), figsize=(4.5 * len(bys), 3.2 * len(labels)), squeeze=False
    )
    offsets = dict(zip(METHODS, (-0.2, 0.0, 0.2), strict=True))
    for i, label in enumerate(labels):
        for j, by in enumerate(bys):
            ax = axes[i][j]
            rows = estimates[(estimates["label"] == label) & (estimates["by"] == by)]
            values = list(dict.fromkeys(rows["value"]))
            for method in METHODS:
                mine = rows[rows["method"] == method].set_index("value").reindex(values)
                x = np.arange(len(values)) + offsets[method]
                err = np.vstack(
                    [mine["estimate"] - mine["ci_low"], mine["ci_high"] - mine["estimate"]]
                )
                ax.errorbar(x, mine["estimate"], yerr=np.abs(np.nan_to_num(err)), fmt="o",
                            capsize=2, label=method.replace("_", "-"))  # fmt: skip
            ax.set_xticks(np.arange(len(values)), values, rotation=60, fontsize=7)
            ax.set_ylim(0, 1)
            ax.set_title(f"share of {label}" + ("" if by == ALL else f" by {by}"), fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("label shares with 95% intervals (groups resampled)")
    fig.tight_layout()
    return fig


def estimate(
    *,
    passages: str | Path,
    task: dict[str, Any],
    settings: dict[str, Any],
    n_boot: int,
    seed: int,
    estimates_tsv: str | Path,
    estimates_png: str | Path,
) -> None:
    """The estimate job: estimates.tsv and its plot from passages.parquet."""
    table = read_table(passages)
    estimates = share_estimates(table, task, settings, n_boot, seed)
    if not estimates["gold_sample_of_population"].all():
        warn(
            log,
            "the annotated population includes the user's own files: the gold-only and "
            "prediction-powered estimates assume the test split is a random sample of them, which "
            "holds only if those files come from the same population as the corpus",
        )
    overall = estimates[estimates["by"] == ALL]
    log.info("overall shares:\n%s", overall[["label", "method", "estimate", "ci_low", "ci_high"]]
             .to_string(index=False))  # fmt: skip
    write_tsv(estimates, estimates_tsv)
    save_figure(plot_estimates(estimates, task["labels"]), estimates_png)
