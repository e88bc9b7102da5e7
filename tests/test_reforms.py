"""REFORMS: 32 items; item 5d quotes the pre-set criterion and the decision where present."""

from types import SimpleNamespace

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


def test_compute_time_sums_only_this_configs_benchmark_files(tmp_path):
    from pathlib import Path

    from locallm.config import load_config, tokenization_id
    from locallm.report.reforms import benchmark_seconds, run_benchmarks

    config = load_config(Path(__file__).parents[1] / "config" / "test.yaml")
    variant = next(iter(config["variants"]))
    shards = config["corpus"]["shards"]
    ours = [
        f"ingest/{0:03d}.tsv",
        "split/split.tsv",
        f"sft/{variant}.tsv",
        f"infer/{variant}/sft/000.tsv",
        f"tokenize/{tokenization_id(config, variant)}.tsv",
    ]
    others = [
        f"ingest/{shards:03d}.tsv",  # a shard of a config with more shards
        "sft/other_variant.tsv",
        f"infer/{variant}/no_such_stage/000.tsv",
        "tokenize/0123456789ab.tsv",
        "convert_gguf/some-model.tsv",
        "archive/archive.tsv",
    ]
    for name in ours + others:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("s\th:m:s\n60.0\t0:01:00\n")
    files = run_benchmarks(tmp_path, config)
    assert sorted(f.relative_to(tmp_path).as_posix() for f in files) == sorted(ours)
    assert benchmark_seconds(files) == 60.0 * len(ours)


def test_the_archive_command_of_2e_keeps_its_target_out_of_configfile():
    from locallm.report.reforms import REFORMS_FILLERS

    text = REFORMS_FILLERS["2e"](SimpleNamespace(results="results/demo"))
    assert "--configfile=results/demo/report/config.yaml archive`" in text
    assert "--configfile results" not in text


def test_7d_says_what_is_byte_identical_and_names_this_runs_cpu_family():
    from locallm.report.reforms import REFORMS_FILLERS

    run = Run(
        config={"seed": 3}, raw_files=[], ingest_report="", filter_report="", split_report="",
        cluster_summary="", duplicates="", splits={}, split_rejects="", lengths={}, models={},
        predictions={}, environment={"cpu": "Some CPU", "cpu_flags": ["avx", "avx2"]},
    )  # fmt: skip
    text = REFORMS_FILLERS["7d"](run)
    assert "On CPUs of the same family the same seed gives byte-identical results" in text
    assert "up to 29 of 1,349 predictions differed" in text
    assert "This run: CPU Some CPU, vector flags avx, avx2." in text


def test_a_derived_label_is_described_with_its_source_and_rule():
    from locallm.config import with_defaults
    from locallm.report.run_files import label_origin

    derived = {"era": {"from": "year", "bins": [1790, 1900, 2030], "labels": ["old", "new"]}}
    config = with_defaults(
        {"corpus": {"derived_columns": derived}, "task": {"label_column": "era"}}
    )
    assert label_origin(config) == (
        "The label `era` is not a column of the raw files: ingest derives it by binning the "
        "numbers in `year`: [1790, 1900) → `old`, [1900, 2030) → `new`; values outside are "
        "rejected (`underivable` in the ingest rejects; `corpus.derived_columns.era` in "
        "config.yaml)."
    )
    plain = with_defaults({"task": {"label_column": "party"}})
    assert (
        label_origin(plain) == "The label is the corpus column `party`, as the raw files give it."
    )


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
