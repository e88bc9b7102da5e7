"""The share estimators on small cases computed by hand."""

import numpy as np
import pytest
from locallm.annotate.estimator import label_shares


def shares(table, method):
    rows = table[table["method"] == method].set_index("label")
    return rows


def test_three_estimates_match_a_case_computed_by_hand():
    # Population: 10 passages in 5 groups; the model says label 1 for 6 of them -> model share 0.6.
    predicted = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0])
    groups = ["a", "a", "b", "b", "c", "c", "d", "d", "e", "e"]
    # Gold sample: 4 passages; the truth has label 1 twice (gold share 0.5); the model says 1
    # three times there, so it over-calls label 1 by (3 - 2) / 4 = 0.25 on the gold sample.
    gold = np.array([1, 0, 1, 0])
    gold_predicted = np.array([1, 1, 1, 0])
    gold_groups = ["x", "x", "y", "y"]
    table = label_shares(predicted, groups, gold, gold_predicted, gold_groups, 2, 200, seed=0)
    model, truth, powered = (shares(table, m) for m in ("model", "gold", "prediction_powered"))
    assert model.loc[1, "estimate"] == pytest.approx(0.6)
    assert truth.loc[1, "estimate"] == pytest.approx(0.5)
    # 0.6 - 0.25: the model's share less its error on the gold sample.
    assert powered.loc[1, "estimate"] == pytest.approx(0.35)
    assert powered.loc[0, "estimate"] == pytest.approx(0.65)  # shares of the labels sum to one
    for rows in (model, truth, powered):
        assert (rows["ci_low"] <= rows["estimate"] + 1e-12).all()
        assert (rows["estimate"] <= rows["ci_high"] + 1e-12).all()


def test_intervals_resample_whole_groups():
    # Every group holds one passage of each label (model and gold alike): any resample of whole
    # groups has the same shares, so every interval collapses to its point. Resampling passages
    # would not.
    predicted = np.array([0, 1, 0, 1, 0, 1])
    groups = ["a", "a", "b", "b", "c", "c"]
    gold = np.array([0, 1, 0, 1])
    gold_groups = ["x", "x", "y", "y"]
    table = label_shares(predicted, groups, gold, gold, gold_groups, 2, 100, seed=1)
    assert np.allclose(table["estimate"], 0.5)
    assert np.allclose(table["ci_low"], 0.5) and np.allclose(table["ci_high"], 0.5)


def test_intervals_widen_with_disagreeing_groups_and_are_seeded():
    rng = np.random.default_rng(3)
    predicted = rng.integers(0, 2, 200)
    groups = np.repeat(np.arange(20), 10)
    gold = rng.integers(0, 2, 60)
    gold_groups = np.repeat(np.arange(6), 10)
    first = label_shares(predicted, groups, gold, gold, gold_groups, 2, 300, seed=5)
    again = label_shares(predicted, groups, gold, gold, gold_groups, 2, 300, seed=5)
    assert first.equals(again)
    assert (first["ci_high"] - first["ci_low"] > 0).all()


def test_a_single_gold_group_gives_a_point_but_no_interval():
    table = label_shares(np.array([0, 1, 1, 0]), ["a", "a", "b", "b"], np.array([1, 1]),
                         np.array([1, 0]), ["x", "x"], 2, 50, seed=0)  # fmt: skip
    powered = shares(table, "prediction_powered")
    # 0.5 less the error on the one gold group: (1 - 2) / 2 for label 1 -> 1.0.
    assert powered.loc[1, "estimate"] == pytest.approx(1.0)
    assert table.loc[table["method"] != "model", ["ci_low", "ci_high"]].isna().all().all()
    assert table.loc[table["method"] == "model", "ci_low"].notna().all()


def test_no_gold_rows_gives_nan_for_the_gold_and_prediction_powered_shares():
    table = label_shares(np.array([0, 1]), ["a", "b"], np.array([], dtype=int),
                         np.array([], dtype=int), [], 2, 50, seed=0)  # fmt: skip
    assert table.loc[table["method"] == "model", "estimate"].tolist() == [0.5, 0.5]
    assert table.loc[table["method"] != "model", "estimate"].isna().all()
