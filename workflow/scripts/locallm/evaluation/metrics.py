"""Agreement metrics with group-bootstrap CIs, baselines and calibration: pure numpy, no I/O.

Predictions are integer codes: 0..K-1 for the K labels, K for an output that matched no label.
An unmatched output is a wrong answer and, for kappa and alpha, its own category (a coder who
gives no usable code disagrees; dropping those rows would flatter a model that often fails).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import krippendorff
import numpy as np
import pandas as pd

UNMATCHED_NAME = "(unmatched)"


def encode(values: Sequence, labels: Sequence[str], *, allow_unmatched: bool) -> np.ndarray:
    """Integer codes of label strings; null becomes the unmatched code K (if allowed)."""
    index = {label: k for k, label in enumerate(labels)}
    codes = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
            if not allow_unmatched:
                raise ValueError(f"row {i}: missing gold label")
            codes[i] = len(labels)
        elif value in index:
            codes[i] = index[value]
        else:
            raise ValueError(f"row {i}: label {value!r} not in the label set {list(labels)}")
    return codes


def confusion(gold: np.ndarray, predicted: np.ndarray, n_labels: int) -> np.ndarray:
    """(K+1) x (K+1) counts, rows gold, columns predicted; the last column is 'unmatched'."""
    size = n_labels + 1
    return np.bincount(gold * size + predicted, minlength=size * size).reshape(size, size)


def _safe_div(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros_like(num * den), where=den != 0)


def per_class(cm: np.ndarray, n_labels: int) -> dict[str, np.ndarray]:
    """Precision, recall, F1 per label; 0 where undefined (scikit-learn's zero_division=0)."""
    tp = np.diag(cm)[:n_labels].astype(float)
    predicted = cm[:, :n_labels].sum(axis=0)
    actual = cm[:n_labels, :].sum(axis=1)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, actual)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1}


def cohen_kappa(cm: np.ndarray) -> float:
    """Cohen's kappa of two coders from their confusion matrix (nan when chance agreement is 1)."""
    n = cm.sum()
    observed = np.trace(cm) / n
    expected = (cm.sum(axis=0) * cm.sum(axis=1)).sum() / n**2
    return float("nan") if expected == 1 else float((observed - expected) / (1 - expected))


def krippendorff_alpha(gold: np.ndarray, predicted: np.ndarray, n_values: int) -> float:
    """Krippendorff's alpha (nominal) of two coders, each row a unit coded once by each."""
    # Row i counts its two codes (the same value twice when the coders agree); bincount rather
    # than np.add.at, which is slow enough to dominate the bootstrap.
    cells = np.arange(len(gold)) * n_values
    size = len(gold) * n_values
    counts = (
        (np.bincount(cells + gold, minlength=size) + np.bincount(cells + predicted, minlength=size))
        .reshape(len(gold), n_values)
        .astype(float)
    )
    if np.count_nonzero(counts.sum(axis=0)) < 2:
        return float("nan")  # one value only: agreement by chance is total, alpha undefined
    return float(krippendorff.alpha(value_counts=counts, level_of_measurement="nominal"))


def agreement(gold: np.ndarray, predicted: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """Accuracy, macro-F1, per-class precision/recall/F1, Cohen's kappa, Krippendorff's alpha."""
    k = len(labels)
    cm = confusion(gold, predicted, k)
    scores = per_class(cm, k)
    result = {
        "accuracy": float(np.trace(cm) / cm.sum()),
        "macro_f1": float(scores["f1"].mean()),
        "cohen_kappa": cohen_kappa(cm),
        "krippendorff_alpha": krippendorff_alpha(gold, predicted, k + 1),
        "unmatched_share": float(cm[:, k].sum() / cm.sum()),
    }
    for name, values in scores.items():
        for label, value in zip(labels, values, strict=True):
            result[f"{name}[{label}]"] = float(value)
    return result


def _calibration_bins(
    confidence: np.ndarray, correct: np.ndarray, bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width confidence bin: size, summed confidence, summed correctness."""
    correct = np.asarray(correct, dtype=float)
    # Bin b holds confidences in (b/bins, (b+1)/bins]; edges from linspace, as Guo et al. (2017).
    which = np.searchsorted(np.linspace(0, 1, bins + 1)[1:-1], confidence, side="left")
    size = np.bincount(which, minlength=bins)
    conf_sum = np.bincount(which, weights=confidence, minlength=bins)
    acc_sum = np.bincount(which, weights=correct, minlength=bins)
    return size, conf_sum, acc_sum


def calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int) -> float:
    """ECE alone: what each bootstrap replicate needs, without building the reliability table."""
    _, conf_sum, acc_sum = _calibration_bins(confidence, correct, bins)
    return float(np.abs(acc_sum - conf_sum).sum() / len(confidence))


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int
) -> tuple[float, pd.DataFrame]:
    """ECE over equal-width confidence bins, and the reliability table.

    ECE = sum over bins of (bin size / n) * |accuracy in bin - mean confidence in bin|. The
    confidence is the top label's probability (classify) or the vote share (generate).
    """
    size, conf_sum, acc_sum = _calibration_bins(confidence, correct, bins)
    table = pd.DataFrame(
        {
            "bin": np.arange(bins),
            "lower": np.arange(bins) / bins,
            "upper": np.arange(1, bins + 1) / bins,
            "n": size,
            "confidence": _safe_div(conf_sum, size),
            "accuracy": _safe_div(acc_sum, size),
        }
    )
    return calibration_error(confidence, correct, bins), table


def group_rows(groups: Sequence) -> list[np.ndarray]:
    """Row indices of each group, groups in order of first appearance."""
    codes, uniques = pd.factorize(pd.Series(groups), sort=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=len(uniques)))[:-1]
    return np.split(order, bounds)


def bootstrap_replicates(
    groups: Sequence,
    statistic: Callable[[np.ndarray], dict[str, float]],
    n_boot: int,
    seed: int,
) -> pd.DataFrame:
    """`statistic(row_indices)` on `n_boot` resamples of whole groups drawn with replacement.

    Rows of one group (passages of one speech) are not independent; resampling groups keeps their
    correlation in the interval. The same seed draws the same groups for every model, so the
    intervals of two models compared on one test set are paired.
    """
    rows = group_rows(groups)
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(n_boot):
        picked = rng.integers(len(rows), size=len(rows))
        replicates.append(statistic(np.concatenate([rows[g] for g in picked])))
    return pd.DataFrame(replicates)


def percentile_intervals(replicates: pd.DataFrame) -> pd.DataFrame:
    """Percentile 95% interval (2.5th, 97.5th) of each column: metric, ci_low, ci_high."""
    low = replicates.quantile(0.025, numeric_only=True)
    high = replicates.quantile(0.975, numeric_only=True)
    return pd.DataFrame({"metric": low.index, "ci_low": low.to_numpy(), "ci_high": high.to_numpy()})


def bootstrap_groups(
    groups: Sequence,
    statistic: Callable[[np.ndarray], dict[str, float]],
    n_boot: int,
    seed: int,
) -> pd.DataFrame:
    """Group-bootstrap percentile 95% CIs of `statistic`: metric, ci_low, ci_high."""
    return percentile_intervals(bootstrap_replicates(groups, statistic, n_boot, seed))


def metric_rows(
    point: dict[str, float], intervals: pd.DataFrame, n: int, **keys: str
) -> pd.DataFrame:
    """The tidy rows (keys..., metric, value, ci_low, ci_high, n) of one evaluated model."""
    table = pd.DataFrame({"metric": list(point), "value": list(point.values())})
    table = table.merge(intervals, on="metric", how="left")
    table["n"] = n
    for name, value in reversed(keys.items()):
        table.insert(0, name, value)
    return table


def evaluate_labels(
    gold: np.ndarray,
    predicted: np.ndarray,
    groups: Sequence,
    labels: Sequence[str],
    *,
    confidence: np.ndarray | None = None,
    calibration_bins: int = 10,
    majority: int | None = None,
    zero_shot: np.ndarray | None = None,
    n_boot: int,
    seed: int,
) -> tuple[dict[str, float], pd.DataFrame]:
    """Point estimates and group-bootstrap CIs of every metric.

    Given confidences, ECE too; given the majority label, `accuracy_over_majority`: the accuracy
    minus the majority-class baseline's on the same resampled rows. That paired difference is the
    test of "beats the baseline": the two accuracies' own intervals are wide when groups differ in
    label balance, but they move together. Given the zero-shot stage's predictions of the same rows,
    `accuracy_over_zero_shot` is the same paired difference against asking the base model: what
    training bought.
    """
    correct = gold == predicted

    def statistic(rows: np.ndarray) -> dict[str, float]:
        values = agreement(gold[rows], predicted[rows], labels)
        if majority is not None:
            values["accuracy_over_majority"] = values["accuracy"] - float(
                np.mean(gold[rows] == majority)
            )
        if zero_shot is not None:
            values["accuracy_over_zero_shot"] = values["accuracy"] - float(
                np.mean(gold[rows] == zero_shot[rows])
            )
        if confidence is not None:
            values["ece"] = calibration_error(confidence[rows], correct[rows], calibration_bins)
        return values

    point = statistic(np.arange(len(gold)))
    return point, bootstrap_groups(groups, statistic, n_boot, seed)


def most_frequent_train_label(train_gold: np.ndarray, n_labels: int) -> int:
    """The most frequent training label (ties: the earlier label in the label set)."""
    return int(np.bincount(train_gold, minlength=n_labels).argmax())


def uniform_baseline(
    gold: np.ndarray, groups: Sequence, labels: Sequence[str], *, n_boot: int, seed: int
) -> tuple[dict[str, float], pd.DataFrame]:
    """A coder guessing labels uniformly at random: mean and 95% interval over seeded draws.

    Each replicate resamples groups and draws fresh guesses, so the interval covers both.
    """
    guesses = np.random.default_rng([seed, 1])

    def statistic(rows: np.ndarray) -> dict[str, float]:
        return agreement(gold[rows], guesses.integers(len(labels), size=len(rows)), labels)

    replicates = bootstrap_replicates(groups, statistic, n_boot, seed)
    return replicates.mean().to_dict(), percentile_intervals(replicates)


def perplexity(nll: np.ndarray, n_tokens: np.ndarray) -> float:
    """exp(total negative log-likelihood / total tokens): token-weighted, as in LM papers."""
    total = n_tokens.sum()
    return float(np.exp(nll.sum() / total)) if total else float("nan")
