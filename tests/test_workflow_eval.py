"""The evaluate job on hand-made predictions, and infer + evaluate on config/test.yaml."""

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import snakemake
from locallm.config import with_defaults
from locallm.evaluation.evaluate import evaluate
from locallm.tables import write_table

TASK = {"labels": ["D", "R"], "label_column": "party"}
SETTINGS = {"bootstrap": 50, "calibration_bins": 5}
NO_THRESHOLD = {"metric": "macro_f1", "threshold": None}
METRIC_COLUMNS = ["variant", "stage", "metric", "value", "ci_low", "ci_high", "n"]


def predictions(stage: str, parsed: list, prob_r: list) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "doc_id": ["a", "b", "c", "d"],
            "group_id": ["g1", "g1", "g2", "g3"],
            "party": ["D", "D", "R", "R"],
            "parsed_label": pd.array(parsed, dtype="string"),
            "prob_D": [1 - p for p in prob_r],
            "prob_R": prob_r,
            "variant": "v",
            "stage": stage,
        }
    )


@pytest.fixture(params=[NO_THRESHOLD])
def evaluated(request, tmp_path):
    paths = []
    for stage, parsed, prob_r in [
        ("base", ["R", "R", "R", "R"], [0.6, 0.6, 0.6, 0.6]),
        ("sft", ["D", "R", "R", "R"], [0.1, 0.7, 0.8, 0.9]),
    ]:
        paths.append(tmp_path / f"{stage}.parquet")
        write_table(predictions(stage, parsed, prob_r), paths[-1])
    write_table(pd.DataFrame({"party": ["D", "D", "R"]}), tmp_path / "train.parquet")
    out = {
        "metrics_tsv": tmp_path / "metrics.tsv",
        "confusion_tsv": tmp_path / "confusion.tsv",
        "reliability_tsv": tmp_path / "reliability.tsv",
        "comparison_png": tmp_path / "comparison.png",
        "confusion_png": tmp_path / "confusion.png",
        "calibration_png": tmp_path / "calibration.png",
        "decision_md": tmp_path / "decision.md",
    }
    settings = {**SETTINGS, "good_enough": request.param}
    evaluate(predictions=paths, perplexities=[], train=tmp_path / "train.parquet", task=TASK,
             settings=settings, seed=0, **out)  # fmt: skip
    return out


def test_evaluate_writes_a_tidy_metrics_table_with_hand_checked_values(evaluated):
    metrics = pd.read_csv(evaluated["metrics_tsv"], sep="\t")
    assert metrics.columns.tolist() == METRIC_COLUMNS
    value = metrics.set_index(["variant", "stage", "metric"])["value"]
    assert value["v", "base", "accuracy"] == 0.5
    assert value["v", "sft", "accuracy"] == 0.75
    assert value["v", "sft", "recall[D]"] == 0.5
    # The train majority (D) is right on 2 of 4 test rows: sft gains 0.25 over it.
    assert value["v", "sft", "accuracy_over_majority"] == pytest.approx(0.25)
    # Paired against the same variant's zero-shot stage (base: 2 of 4 right).
    assert value["v", "sft", "accuracy_over_zero_shot"] == pytest.approx(0.25)
    assert ("v", "base", "accuracy_over_zero_shot") not in value.index
    # ECE of sft: confidences .9 .7 .8 .9, correct 1 0 1 1; bins of 0.2: (.6,.8] holds .7 and .8.
    assert value["v", "sft", "ece"] == pytest.approx((abs(0.5 - 0.75) * 2 + abs(1 - 0.9) * 2) / 4)
    # The majority baseline predicts the train split's majority (D), whatever the test holds.
    assert value["baseline", "majority", "accuracy"] == 0.5
    assert value["baseline", "majority", "recall[D]"] == 1.0
    assert ("baseline", "uniform", "accuracy") in value.index
    assert (metrics["ci_low"] <= metrics["value"] + 1e-9).all()


@pytest.mark.parametrize("evaluated", [{"metric": "accuracy", "threshold": 0.5}], indirect=True)
def test_evaluate_adds_good_enough_columns_and_writes_the_decision(evaluated):
    metrics = pd.read_csv(evaluated["metrics_tsv"], sep="\t")
    assert metrics.columns.tolist() == [*METRIC_COLUMNS, "threshold", "good_enough"]
    accuracy = metrics[metrics["metric"] == "accuracy"].set_index(["variant", "stage"])
    for stage in ("base", "sft"):
        row = accuracy.loc[("v", stage)]
        assert row["threshold"] == 0.5
        assert bool(row["good_enough"]) == (row["ci_low"] >= 0.5)
    assert accuracy.loc[("baseline", "majority"), ["threshold", "good_enough"]].isna().all()
    decision = evaluated["decision_md"].read_text()
    assert "| v | base |" in decision and "| v | sft |" in decision


def test_evaluate_writes_confusion_counts_and_plots(evaluated):
    counts = pd.read_csv(evaluated["confusion_tsv"], sep="\t")
    sft = counts[counts["stage"] == "sft"].set_index(["gold", "predicted"])["count"]
    assert sft["D", "D"] == 1 and sft["D", "R"] == 1 and sft["R", "R"] == 2
    assert sft["D", "(unmatched)"] == 0
    for key in ("comparison_png", "confusion_png", "calibration_png"):
        assert evaluated[key].stat().st_size > 0
    assert "no decision is made" in evaluated["decision_md"].read_text()


def test_infer_and_evaluate_on_the_test_config(test_workflow):
    # An option first: conftest's `--configfile config/test.yaml` would take a bare target as a
    # second config file (argparse nargs="+").
    snakemake(test_workflow, "--cores", "2", "results/test/eval/metrics.tsv")
    config = yaml.safe_load((test_workflow / "config/test.yaml").read_text())
    variants = list(config.get("variants", {"default": {}}))
    stages = with_defaults(config)["inference"]["stages"]
    test = pd.read_parquet(test_workflow / "results/test/splits/test.parquet")
    labels = config["task"]["labels"]
    for variant in variants:
        for stage in stages:
            pred = pd.read_parquet(
                test_workflow / f"results/test/predictions/{variant}/{stage}.parquet"
            )
            # Every test row once, in the test split's order, nothing dropped.
            assert sorted(pred["doc_id"]) == sorted(test["doc_id"])
            probs = pred[[f"prob_{label}" for label in labels]].to_numpy()
            assert np.allclose(probs.sum(axis=1), 1.0)
            assert set(pred["parsed_label"]) <= set(labels)
            assert (pred["stage"] == stage).all() and (pred["gen_mode"] == "classify").all()
    metrics = pd.read_csv(test_workflow / "results/test/eval/metrics.tsv", sep="\t")
    coverage = ["text_seen", "text_cut_share", "model_params"]
    assert metrics.columns.tolist() == [*METRIC_COLUMNS, *coverage]
    # Perplexity rows come from the validation texts, not from prompts: no coverage there.
    models = metrics[(metrics["variant"] != "baseline") & (metrics["metric"] != "perplexity")]
    assert models["text_seen"].between(0, 1).all() and (models["model_params"] > 0).all()
    assert metrics.loc[metrics["variant"] == "baseline", coverage].isna().all().all()
    accuracy = metrics[metrics["metric"] == "accuracy"].set_index(["variant", "stage"])
    for variant in variants:
        for stage in stages:
            row = accuracy.loc[(variant, stage)]
            assert row["ci_low"] <= row["value"] <= row["ci_high"]
            assert row["n"] == len(test)
    assert {("baseline", "majority"), ("baseline", "uniform")} <= set(accuracy.index)
    ppl = metrics[metrics["metric"] == "perplexity"]
    # The fewshot stage asks the base model: its perplexity is the base stage's, not repeated.
    assert len(ppl) == len(variants) * len([s for s in stages if s != "fewshot"])
    assert (ppl["value"] > 1).all()
    for name in ("comparison.png", "confusion.png", "calibration.png", "decision.md"):
        assert (test_workflow / "results/test/eval" / name).stat().st_size > 0
    if "fewshot" in stages:
        train = set(pd.read_parquet(test_workflow / "results/test/splits/train.parquet")["doc_id"])
        for variant in variants:
            pred = pd.read_parquet(
                test_workflow / f"results/test/predictions/{variant}/fewshot.parquet"
            )
            used = {d for ids in pred["fewshot_doc_ids"] for d in ids}
            assert used and used <= train and not used & set(test["doc_id"])


def test_evaluate_in_generate_mode_counts_unmatched_and_calibrates_vote_shares(tmp_path):
    table = predictions("sft", ["D", None, "R", "D"], [0.0] * 4)
    table = table.drop(columns=["prob_D", "prob_R"]).assign(vote_share=[1.0, 0.0, 0.6, 0.6])
    write_table(table, tmp_path / "sft.parquet")
    write_table(pd.DataFrame({"party": ["R"]}), tmp_path / "train.parquet")
    out = {name: tmp_path / name for name in ("m.tsv", "c.tsv", "r.tsv", "a.png", "b.png", "d.png")}
    train = tmp_path / "train.parquet"
    settings = {**SETTINGS, "good_enough": NO_THRESHOLD}
    evaluate(predictions=[tmp_path / "sft.parquet"], perplexities=[], train=train,
             task=TASK, settings=settings, seed=0, metrics_tsv=out["m.tsv"],
             confusion_tsv=out["c.tsv"], reliability_tsv=out["r.tsv"], comparison_png=out["a.png"],
             confusion_png=out["b.png"], calibration_png=out["d.png"],
             decision_md=tmp_path / "decision.md")  # fmt: skip
    value = pd.read_csv(out["m.tsv"], sep="\t").set_index(["variant", "stage", "metric"])["value"]
    assert value["v", "sft", "accuracy"] == 0.5  # the unmatched row counts as wrong
    assert value["v", "sft", "unmatched_share"] == 0.25
    # Vote shares 1.0 (right), 0.0 (unmatched), 0.6 (right), 0.6 (wrong): bins of 0.2.
    assert value["v", "sft", "ece"] == pytest.approx((0.0 + 0.0 + abs(0.5 - 0.6) * 2) / 4)
    counts = pd.read_csv(out["c.tsv"], sep="\t").set_index(["gold", "predicted"])["count"]
    assert counts["D", "(unmatched)"] == 1


def test_metrics_record_how_much_of_the_passages_a_stage_saw_and_its_model_size():
    from locallm.evaluation.evaluate import evaluate_model, model_label

    table = predictions("fewshot", ["D", "R", "R", "R"], [0.1, 0.7, 0.8, 0.9]).assign(
        text_seen=[1.0, 1.0, 0.5, 0.3], text_cut=[False, False, True, True], model_params=1234
    )
    metrics, _, _ = evaluate_model(table, ["D", "R"], "party", SETTINGS, seed=0)
    assert metrics.columns.tolist() == [
        *METRIC_COLUMNS,
        "text_seen",
        "text_cut_share",
        "model_params",
    ]
    assert metrics["text_seen"].tolist() == pytest.approx([0.7] * len(metrics))
    assert (metrics["text_cut_share"] == 0.5).all() and (metrics["model_params"] == 1234).all()
    assert model_label(metrics.iloc[0]) == "v / fewshot (passage cut in 50%)"
    assert model_label(metrics.iloc[0].drop("text_cut_share")) == "v / fewshot"
