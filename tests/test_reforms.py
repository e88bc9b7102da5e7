"""REFORMS: 32 items; item 5d quotes the pre-set criterion and the decision where present."""

from locallm.report.reforms import selection_criterion
from locallm.report.reforms_items import ITEMS, MODULES
from locallm.report.run_files import Run


def run_with(evaluation: dict, decision: str | None = None) -> Run:
    paths = dict.fromkeys(["ingest_report", "filter_report", "split_report", "cluster_summary",
                           "duplicates", "split_rejects"], "unused")  # fmt: skip
    return Run(config={"evaluation": evaluation}, raw_files=[], splits={}, lengths={}, models={},
               predictions={}, decision=decision, **paths)  # fmt: skip


def test_checklist_has_32_items_in_8_modules():
    assert len(ITEMS) == 32
    assert sorted({item[0] for item in ITEMS}) == sorted(MODULES) == [str(i) for i in range(1, 9)]


def test_without_a_criterion_or_decision_the_item_is_left_to_the_author(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # A decision file the rule did not pass is not read (the library knows no workflow paths).
    (tmp_path / "results/eval").mkdir(parents=True)
    (tmp_path / "results/eval/decision.md").write_text("Use full/sft.\n")
    text = selection_criterion(run_with({"bootstrap": 10}))
    assert text.startswith("**For the author.**") and "evaluation.good_enough" in text


def test_a_preset_criterion_and_the_decision_file_are_quoted_with_their_sources(tmp_path):
    decision = tmp_path / "eval" / "decision.md"
    decision.parent.mkdir()
    decision.write_text("# Decision\n\nUse full/sft: accuracy CI above 0.8.\n")
    good_enough = {"metric": "accuracy", "threshold": 0.8}
    text = selection_criterion(run_with({"good_enough": good_enough}, decision=str(decision)))
    assert '`{"metric": "accuracy", "threshold": 0.8}`' in text
    assert "> Use full/sft: accuracy CI above 0.8." in text and "# Decision" not in text
    assert "Source: `config.yaml`." in text and f"Source: `{decision}`." in text


def test_the_metric_table_says_how_much_of_the_passages_each_stage_saw():
    import pandas as pd
    from locallm.report.run_files import metric_table

    metrics = pd.DataFrame(
        {
            "variant": ["v", "v"],
            "stage": ["base", "fewshot"],
            "metric": ["accuracy", "accuracy"],
            "value": [0.6, 0.7],
            "ci_low": [0.5, 0.6],
            "ci_high": [0.7, 0.8],
            "n": [200, 200],
            "text_seen": [1.0, 0.42],
            "text_cut_share": [0.0, 0.9],
        }
    )
    run = run_with({})
    run.metrics, run.tables["metrics.tsv"] = "metrics.tsv", metrics
    table = metric_table(run)
    assert table["passage seen"].tolist() == ["100%", "42%, cut in 90% of rows"]
