"""Annotation on config/test.yaml: `snakemake annotate`, the tables and their accounting, the
estimates and the card; and the refusal on a config whose bar no stage clears."""

import json

import pandas as pd
import yaml
from conftest import copy_workflow, snakemake

FOLDER = "results/test/annotate"


def test_snakemake_annotate_labels_every_passage_once_and_accounts_for_it(test_workflow):
    snakemake(test_workflow, "--cores", "2", "annotate")
    folder = test_workflow / FOLDER
    config = yaml.safe_load((test_workflow / "config/test.yaml").read_text())
    labels = config["task"]["labels"]
    inputs = pd.read_parquet(folder / "input.parquet")
    passages = pd.read_parquet(folder / "passages.parquet")
    # One row per input passage, none lost or repeated.
    assert sorted(passages["doc_id"]) == sorted(inputs["doc_id"])
    assert not passages["doc_id"].duplicated().any()
    # Every kept corpus passage is counted: annotated, or left out of the seeded sample.
    filtered = pd.concat(
        pd.read_parquet(p)
        for p in sorted((test_workflow / "results/test/filtered").glob("*.parquet"))
    )
    accounting = pd.read_csv(folder / "accounting.tsv", sep="\t").set_index("origin")
    corpus = accounting.loc["corpus"]
    assert corpus["records_read"] == len(filtered)
    assert corpus["passages_annotated"] + corpus["passages_not_annotated"] == len(filtered)
    assert corpus["passages_written"] == len(passages)
    # 12 sampled addresses, plus every test-split passage (the gold sample).
    assert passages.loc[passages["sampled"], "group_id"].nunique() == 12
    test = pd.read_parquet(test_workflow / "results/test/splits/test.parquet")
    assert set(test["doc_id"]) <= set(passages["doc_id"])
    assert set(passages["split"]) <= {"train", "validation", "test", "none"}
    assert set(passages["predicted_label"]) <= set(labels)
    assert ((passages["variant"] == "qlora_r8") & (passages["stage"] == "sft")).all()
    assert passages["stage_good_enough"].isna().all()  # no bar set in the test config
    assert passages["code_version"].notna().all() and passages["engine"].eq("transformers").all()
    for column in ("year", "party", "president", "confidence", *[f"prob_{x}" for x in labels]):
        assert column in passages
    documents = pd.read_parquet(folder / "documents.parquet")
    assert documents["n_passages"].sum() == len(passages)
    assert set(documents["majority_label"]) <= {*labels, "tie"}
    estimates = pd.read_csv(folder / "estimates.tsv", sep="\t")
    overall = estimates[estimates["by"] == "all"]
    assert sorted(overall["method"].unique()) == ["gold", "model", "prediction_powered"]
    assert overall["n_gold"].eq(len(test)).all()
    assert set(estimates.loc[estimates["by"] == "party", "value"]) <= set(passages["party"])
    # A party with no gold passage (e.g. Whig: not one of the task's labels) has no gold and no
    # prediction-powered estimate, only the model's.
    whig = estimates[(estimates["by"] == "party") & (estimates["value"] == "Whig")]
    assert whig.loc[whig["method"] != "model", "estimate"].isna().all()
    known = estimates.dropna(subset=["estimate"])
    # An estimate from fewer than two groups has no interval (one group resampled has no spread);
    # every other interval holds its estimate.
    bounded = known.dropna(subset=["ci_low", "ci_high"])
    assert (bounded["ci_low"] <= bounded["estimate"] + 1e-9).all()
    assert (bounded["estimate"] <= bounded["ci_high"] + 1e-9).all()
    unbounded = known[known["ci_low"].isna()]
    assert (unbounded[["n_gold_groups", "n_groups"]].min(axis=1) < 2).all()
    card = (folder / "card.md").read_text()
    assert "qlora_r8" in card and "No pre-registered bar was assessed" in card
    assert "read_parquet" in card and "prediction-powered" in card
    assert (folder / "estimates.png").stat().st_size > 0
    assert not (folder / "partial").exists() or not any((folder / "partial").iterdir())


def test_decision_without_a_good_enough_stage_stops_with_the_best_and_how_to_choose(tmp_path):
    workdir = copy_workflow(tmp_path / "refuse")
    # The evaluation of a run in which no stage clears a macro-F1 bar of 0.99.
    metrics = pd.DataFrame(
        {
            "variant": ["qlora_r8", "qlora_r8", "baseline"],
            "stage": ["base", "sft", "majority"],
            "metric": "macro_f1",
            "value": [0.41, 0.62, 0.40],
            "ci_low": [0.30, 0.55, 0.33],
            "ci_high": [0.50, 0.70, 0.45],
            "n": 100,
        }
    )
    (workdir / "results/test/eval").mkdir(parents=True)
    metrics.to_csv(workdir / "results/test/eval/metrics.tsv", sep="\t", index=False)
    config = yaml.safe_load((workdir / "config/test.yaml").read_text())
    config["annotate"]["use"] = "decision"
    config["evaluation"] = {"good_enough": {"metric": "macro_f1", "threshold": 0.99}}
    (workdir / "config/refuse.yaml").write_text(yaml.safe_dump(config))
    # Only choose_stage may run: the metrics.tsv written above stands in for the evaluation.
    result = snakemake(
        workdir, "--allowed-rules", "choose_stage", "--", "results/test/annotate/choice.json",
        check=False, configfile="config/refuse.yaml",
    )  # fmt: skip
    assert result.returncode != 0
    log = (workdir / "logs/test/choose_stage/choose_stage.log").read_text()
    assert "no stage is good enough" in log
    assert "The best is qlora_r8/sft: macro_f1 0.620 (95% CI 0.550 to 0.700)" in log
    assert "annotate.use: {variant: NAME, stage: STAGE}" in log
    assert not (workdir / FOLDER / "choice.json").exists()


def test_named_stage_choice_is_recorded(test_workflow):
    choice = json.loads((test_workflow / FOLDER / "choice.json").read_text())
    assert (choice["variant"], choice["stage"]) == ("qlora_r8", "sft")
    assert choice["chosen_by"] == "named in annotate.use"
