"""Label shares three ways: the model's labels, the gold sample's, prediction-powered (numpy).

Prediction-powered inference (Angelopoulos et al., Science 2023) corrects the share of a label in
the model's annotations with the model's average error on a gold-labelled sample:

    share_pp = mean over the population of 1[predicted = k]
               - mean over the gold sample of (1[predicted = k] - 1[gold = k])

It is unbiased when the gold sample is a random sample of the population the model annotated. The
workflow's gold sample (the test split) is drawn by group (whole addresses, authors), so passages
are not independent draws; the intervals here resample whole groups, of the gold sample and of the
population independently (a group bootstrap of the same estimator). ppi-python's `ppi_mean_ci`
computes the same point estimate with an interval that assumes independent rows (too narrow when
passages of a group are alike), so the estimator is written here, a few lines of numpy, rather
than adding that package and its numba/statsmodels dependencies for the point estimate alone.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

METHODS = ("model", "gold", "prediction_powered")
# Resampling one group gives the same share every time: an interval of zero width that claims a
# certainty the data cannot give. With fewer groups than this, the interval is left empty (NaN).
MIN_GROUPS = 2


def group_counts(
    groups: Sequence, values: np.ndarray, n_labels: int
) -> tuple[np.ndarray, np.ndarray]:
    """(rows per group, label counts per group x label) of label indices `values`."""
    codes, uniques = pd.factorize(pd.Series(groups, dtype=object), sort=True)
    rows = np.bincount(codes, minlength=len(uniques)).astype(float)
    counts = np.zeros((len(uniques), n_labels))
    np.add.at(counts, (codes, values), 1.0)
    return rows, counts


def resample_weights(n_groups: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Times each group is drawn in each of `n_boot` resamples of `n_groups` with replacement."""
    if n_groups == 0:
        return np.zeros((n_boot, 0))
    return rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot).astype(float)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return numerator / denominator[..., None]


def label_shares(
    predicted: np.ndarray,
    groups: Sequence,
    gold_labels: np.ndarray,
    gold_predicted: np.ndarray,
    gold_groups: Sequence,
    n_labels: int,
    n_boot: int,
    seed: int,
) -> pd.DataFrame:
    """Each label's share by the three methods, with group-bootstrap percentile 95% intervals.

    `predicted`, `groups`: label index and group of every annotated passage (the population);
    `gold_labels`, `gold_predicted`, `gold_groups`: the gold sample's true and predicted label
    indices and groups. Returns rows label (index), method, estimate, ci_low, ci_high.
    A method that cannot be computed (no gold rows) gives NaN.
    """
    pop_rows, pop_pred = group_counts(groups, predicted, n_labels)
    gold_rows, gold_true = group_counts(gold_groups, gold_labels, n_labels)
    _, gold_pred = group_counts(gold_groups, gold_predicted, n_labels)
    gold_error = gold_pred - gold_true

    def estimates(pop_w: np.ndarray, gold_w: np.ndarray) -> dict[str, np.ndarray]:
        model = _ratio(pop_w @ pop_pred, pop_w @ pop_rows)
        gold = _ratio(gold_w @ gold_true, gold_w @ gold_rows)
        bias = _ratio(gold_w @ gold_error, gold_w @ gold_rows)
        return {"model": model, "gold": gold, "prediction_powered": model - bias}

    point = estimates(np.ones((1, len(pop_rows))), np.ones((1, len(gold_rows))))
    rng = np.random.default_rng(seed)
    boot = estimates(
        resample_weights(len(pop_rows), n_boot, rng), resample_weights(len(gold_rows), n_boot, rng)
    )
    too_few = {
        "model": len(pop_rows) < MIN_GROUPS,
        "gold": len(gold_rows) < MIN_GROUPS,
        "prediction_powered": min(len(pop_rows), len(gold_rows)) < MIN_GROUPS,
    }
    rows = []
    for method in METHODS:
        with warnings.catch_warnings():  # a method without gold rows is NaN in every resample
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanpercentile(boot[method], [2.5, 97.5], axis=0)
        if too_few[method]:
            low, high = np.full(n_labels, np.nan), np.full(n_labels, np.nan)
        for label in range(n_labels):
            rows.append(
                {
                    "label": label,
                    "method": method,
                    "estimate": point[method][0, label],
                    "ci_low": low[label],
                    "ci_high": high[label],
                }
            )
    return pd.DataFrame(rows)
