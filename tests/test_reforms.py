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


def test_results_item_quotes_the_annotation_shares_and_their_assumption(tmp_path):
    from locallm.report.reforms import _annotation

    rows = [
        {"by": "all", "value": "all", "label": label, "method": method, "estimate": share,
         "ci_low": share - 0.1, "ci_high": share + 0.1, "n_passages": 50, "n_groups": 5,
         "n_gold": 20, "n_gold_groups": 2, "population": "the corpus",
         "gold_sample_of_population": True}
        for label, share in (("spoken", 0.4), ("written", 0.6))
        for method in ("model", "gold", "prediction_powered")
    ]  # fmt: skip
    import pandas as pd

    pd.DataFrame(rows).to_csv(tmp_path / "estimates.tsv", sep="\t", index=False)
    run = run_with({})
    assert _annotation(run) == ""  # a run that did not annotate says nothing
    run.annotation = {
        "card": "results/annotate/card.md",
        "estimates": str(tmp_path / "estimates.tsv"),
    }
    text = _annotation(run)
    assert "| spoken | 0.400 (0.300 to 0.500) |" in text
    assert "random sample of the annotated population" in text
    assert "Source: `results/annotate/card.md`" in text
