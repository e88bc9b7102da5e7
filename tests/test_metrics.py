"""Metrics against hand-computed values; bootstrap CIs that resample groups reproducibly."""

import krippendorff
import numpy as np
import pytest
from locallm.evaluation.metrics import (
    agreement,
    bootstrap_groups,
    bootstrap_replicates,
    calibration_error,
    confusion,
    encode,
    evaluate_labels,
    expected_calibration_error,
    most_frequent_train_label,
    perplexity,
    uniform_baseline,
)
from sklearn.metrics import cohen_kappa_score, f1_score

LABELS = ["A", "B"]
# Hand example: 8 rows, one output matched no label (None).
GOLD = ["A", "A", "A", "B", "B", "B", "A", "B"]
PRED = ["A", "A", "B", "B", "B", "A", "A", None]


def codes():
    return encode(GOLD, LABELS, allow_unmatched=False), encode(PRED, LABELS, allow_unmatched=True)


def test_encode_gives_unmatched_the_last_code_and_rejects_unknown_labels():
    assert encode(["B", None, "A"], LABELS, allow_unmatched=True).tolist() == [1, 2, 0]
    with pytest.raises(ValueError, match="'C' not in the label set"):
        encode(["C"], LABELS, allow_unmatched=True)
    with pytest.raises(ValueError, match="row 0: missing gold label"):
        encode([None], LABELS, allow_unmatched=False)


def test_confusion_counts_unmatched_in_the_last_column():
    gold, pred = codes()
    assert confusion(gold, pred, 2).tolist() == [[3, 1, 0], [1, 2, 1], [0, 0, 0]]


def test_accuracy_and_f1_match_hand_computed_values():
    m = agreement(*codes(), LABELS)
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["precision[A]"] == pytest.approx(3 / 4)
    assert m["recall[A]"] == pytest.approx(3 / 4)
    assert m["f1[A]"] == pytest.approx(3 / 4)
    assert m["precision[B]"] == pytest.approx(2 / 3)
    assert m["recall[B]"] == pytest.approx(1 / 2)
    assert m["f1[B]"] == pytest.approx(4 / 7)
    assert m["macro_f1"] == pytest.approx(37 / 56)
    assert m["unmatched_share"] == pytest.approx(1 / 8)


def test_macro_f1_and_kappa_agree_with_scikit_learn():
    gold, pred = codes()
    m = agreement(gold, pred, LABELS)
    assert m["macro_f1"] == pytest.approx(
        f1_score(gold, pred, labels=[0, 1], average="macro", zero_division=0)
    )
    assert m["cohen_kappa"] == pytest.approx(cohen_kappa_score(gold, pred))


def test_cohen_kappa_matches_hand_computed_value():
    # p_o = 5/8; marginals gold (4, 4, 0), predicted (4, 3, 1): p_e = 28/64; kappa = 1/3.
    assert agreement(*codes(), LABELS)["cohen_kappa"] == pytest.approx(1 / 3)


def test_krippendorff_alpha_matches_hand_computed_two_coder_value():
    # 16 pooled values: A 8, B 7, unmatched 1; 3 disagreeing units -> 6 off-diagonal coincidences.
    # alpha = 1 - (n - 1) * 6 / (n^2 - sum n_c^2) = 1 - 15 * 6 / (256 - 114) = 26 / 71.
    gold, pred = codes()
    alpha = agreement(gold, pred, LABELS)["krippendorff_alpha"]
    assert alpha == pytest.approx(26 / 71)
    assert alpha == pytest.approx(
        krippendorff.alpha(reliability_data=np.vstack([gold, pred]), level_of_measurement="nominal")
    )


def test_perfect_agreement_scores_one():
    gold = np.array([0, 1, 1, 0])
    m = agreement(gold, gold, LABELS)
    assert (m["accuracy"], m["macro_f1"], m["cohen_kappa"], m["krippendorff_alpha"]) == (1, 1, 1, 1)


def test_expected_calibration_error_matches_hand_example():
    probs = np.array(
        [
            [0.4, 0.3, 0.3],  # bin (0, .5]: conf .4, wrong
            [0.45, 0.35, 0.2],  # bin (0, .5]: conf .45, right
            [0.9, 0.05, 0.05],  # bin (.5, 1]: conf .9, right
            [0.1, 0.8, 0.1],  # conf .8, wrong
            [0.2, 0.1, 0.7],  # conf .7, right
            [0.6, 0.3, 0.1],  # conf .6, wrong
        ]
    )
    gold = np.array([1, 0, 0, 0, 2, 1])
    ece, table = expected_calibration_error(probs.max(1), probs.argmax(1) == gold, bins=2)
    # (2/6) * |0.5 - 0.425| + (4/6) * |0.5 - 0.75|
    assert ece == pytest.approx(2 / 6 * 0.075 + 4 / 6 * 0.25)
    assert table["n"].tolist() == [2, 4]
    assert table["accuracy"].tolist() == pytest.approx([0.5, 0.5])
    assert table["confidence"].tolist() == pytest.approx([0.425, 0.75])


def test_calibration_error_alone_equals_the_ece_beside_the_reliability_table():
    rng = np.random.default_rng(0)
    confidence, correct = rng.uniform(0.5, 1, 300), rng.uniform(size=300) < 0.7
    ece, _ = expected_calibration_error(confidence, correct, bins=10)
    assert calibration_error(confidence, correct, bins=10) == ece


def test_krippendorff_alpha_counts_an_agreed_code_twice_in_its_unit():
    gold, predicted = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0])
    counts = np.zeros((5, 3))
    for unit, (g, p) in enumerate(zip(gold, predicted, strict=True)):
        counts[unit, g] += 1
        counts[unit, p] += 1
    expected = krippendorff.alpha(value_counts=counts, level_of_measurement="nominal")
    assert agreement(gold, predicted, ["a", "b"])["krippendorff_alpha"] == expected


def test_calibration_bins_are_closed_on_the_right():
    probs = np.array([[0.7, 0.3], [0.3, 0.7]])
    _, table = expected_calibration_error(probs.max(1), np.array([True, True]), bins=10)
    assert table.loc[6, "n"] == 2  # 0.7 lies in (0.6, 0.7], not (0.7, 0.8]


def test_bootstrap_resamples_whole_groups():
    # Group g1: 10 right answers; g2: 10 wrong. A resample of groups scores 0, 0.5 or 1.
    gold = np.zeros(20, dtype=int)
    pred = np.array([0] * 10 + [1] * 10)
    groups = ["g1"] * 10 + ["g2"] * 10

    def accuracy(rows):
        return {"accuracy": float((gold[rows] == pred[rows]).mean())}

    replicates = bootstrap_replicates(groups, accuracy, n_boot=200, seed=3)
    assert set(replicates["accuracy"]) == {0.0, 0.5, 1.0}
    ci = bootstrap_groups(groups, accuracy, n_boot=200, seed=3)
    assert ci.loc[0, ["ci_low", "ci_high"]].tolist() == [0.0, 1.0]


def test_bootstrap_is_reproducible_with_the_seed():
    rng = np.random.default_rng(0)
    gold, pred = rng.integers(2, size=60), rng.integers(2, size=60)
    groups = np.repeat(np.arange(15), 4)

    def run(seed):
        return evaluate_labels(gold, pred, groups, LABELS, n_boot=50, seed=seed)[1]

    first, again, other = run(11), run(11), run(12)
    assert first.equals(again)
    assert not first.equals(other)
    accuracy = first.set_index("metric").loc["accuracy"]
    assert accuracy.ci_low < ((gold == pred).mean()) < accuracy.ci_high


def test_evaluate_labels_adds_ece_given_confidences():
    gold = np.array([0, 1, 1, 0])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    point, intervals = evaluate_labels(
        gold, probs.argmax(1), ["a", "a", "b", "b"], LABELS, confidence=probs.max(1),
        calibration_bins=2, n_boot=20, seed=0,
    )  # fmt: skip
    assert point["ece"] == pytest.approx(abs(0.75 - (0.9 + 0.8 + 0.6 + 0.7) / 4))
    assert "ece" in intervals["metric"].tolist()


def test_most_frequent_train_label_breaks_ties_by_label_order():
    assert most_frequent_train_label(np.array([1, 1, 0]), 2) == 1
    assert most_frequent_train_label(np.array([1, 0]), 2) == 0


def test_uniform_baseline_scores_chance():
    gold = np.random.default_rng(1).integers(2, size=400)
    groups = np.repeat(np.arange(100), 4)
    point, intervals = uniform_baseline(gold, groups, LABELS, n_boot=200, seed=0)
    assert point["accuracy"] == pytest.approx(0.5, abs=0.02)
    assert point["cohen_kappa"] == pytest.approx(0.0, abs=0.02)
    low, high = intervals.set_index("metric").loc["accuracy", ["ci_low", "ci_high"]]
    assert low < 0.5 < high


def test_perplexity_weights_texts_by_tokens():
    assert perplexity(np.array([2.0, 4.0]), np.array([1, 3])) == pytest.approx(np.exp(1.5))


def test_accuracy_over_majority_is_paired_on_the_same_resampled_rows():
    # Group a: model 7/10 right, majority guess 5/10 (gain 0.2); group b: both 9/10 (gain 0).
    # A resample of two groups gains 0, 0.1 or 0.2, whatever its accuracy (0.7 to 0.9).
    gold = np.array([0] * 5 + [1] * 5 + [0] * 9 + [1] * 1)
    predicted = gold.copy()
    predicted[[5, 6, 7, 19]] = 0  # wrong on 3 of group A's 1s and on group B's single 1
    groups = ["a"] * 10 + ["b"] * 10
    point, intervals = evaluate_labels(gold, predicted, groups, LABELS, majority=0, n_boot=100,
                                       seed=0)  # fmt: skip
    assert point["accuracy_over_majority"] == pytest.approx(16 / 20 - 14 / 20)
    ci = intervals.set_index("metric")
    assert ci.loc["accuracy_over_majority", "ci_low"] == pytest.approx(0.0)
    assert ci.loc["accuracy_over_majority", "ci_high"] == pytest.approx(0.2)
    assert ci.loc["accuracy", "ci_low"] == pytest.approx(0.7)


def test_accuracy_over_zero_shot_is_paired_on_the_same_resampled_rows():
    # Group a: zero-shot 5/10 right, trained 10/10 (gain 0.5); group b: both 8/10 (gain 0).
    gold = np.array([0] * 5 + [1] * 5 + [0] * 8 + [1] * 2)
    trained = gold.copy()
    trained[[18, 19]] = 0
    zero_shot = np.zeros(20, dtype=int)  # "always 0": right on a's 0s and b's 0s
    groups = ["a"] * 10 + ["b"] * 10
    point, intervals = evaluate_labels(gold, trained, groups, LABELS, zero_shot=zero_shot,
                                       n_boot=200, seed=0)  # fmt: skip
    assert point["accuracy_over_zero_shot"] == pytest.approx(18 / 20 - 13 / 20)
    ci = intervals.set_index("metric").loc["accuracy_over_zero_shot"]
    assert (ci["ci_low"], ci["ci_high"]) == (pytest.approx(0.0), pytest.approx(0.5))


def test_calibration_bars_show_how_many_passages_each_holds():
    import pandas as pd
    from locallm.evaluation.evaluate import plot_calibration

    reliability = pd.DataFrame(
        {"variant": ["v"] * 3, "stage": ["sft"] * 3, "lower": [0.0, 0.5, 0.9],
         "upper": [0.5, 0.9, 1.0], "accuracy": [0.4, 0.7, 1.0], "n": [0, 37, 2]}
    )  # fmt: skip
    metrics = pd.DataFrame({"variant": ["v"], "stage": ["sft"], "metric": ["ece"], "value": [0.1]})
    fig = plot_calibration(reliability, metrics)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts == ["37", "2"]  # the empty bin draws no bar
