"""The replication package on config/test.yaml: the report rule, `snakemake --report`, params that
change only with values, and an archive that reruns to the same metrics in an empty folder."""

import hashlib
import json
import re
import subprocess
import sys
import tarfile

import pandas as pd
import pytest
import yaml
from conftest import snakemake
from locallm.config import load_config

REPORT = "results/test/report"


@pytest.fixture(scope="module")
def built(test_workflow):
    """The test workflow with every target of `all` (the report included) built."""
    snakemake(test_workflow)
    return test_workflow


def reversed_keys(value):
    """`value` with the keys of every mapping in reverse order (same values)."""
    if isinstance(value, dict):
        return {key: reversed_keys(value[key]) for key in reversed(list(value))}
    return value


def dry_run(workdir, configfile):
    """Jobs a dry-run plans with `configfile` (rule -> count), and its output."""
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "2", f"--configfile={configfile}"],
        cwd=workdir, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    text = result.stdout + result.stderr
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", text.split("Job stats:")[-1], flags=re.MULTILINE))
    return {rule: int(n) for rule, n in jobs.items() if rule != "total"}, text


def test_reforms_lists_all_32_items_each_filled_with_its_source_or_marked(built):
    reforms = (built / REPORT / "REFORMS.md").read_text()
    items = re.findall(r"^### (\d[a-f])\. ", reforms, flags=re.MULTILINE)
    assert len(items) == 32 and len(set(items)) == 32
    modules = re.findall(r"^## (\d)\. ", reforms, flags=re.MULTILINE)
    assert modules == [str(i) for i in range(1, 9)]
    for block in re.split(r"^### ", reforms, flags=re.MULTILINE)[1:]:
        item = block.split(".", 1)[0]
        assert "Source: `" in block or "**For the author.**" in block, item
    # The run's own numbers, each from its file.
    flow = reforms.split("### 4c.")[1].split("###")[0]
    ingest = pd.read_csv(built / "results/test/corpus/ingest_report.tsv", sep="\t", dtype=str)
    raw = ingest.set_index("shard").loc["all", "raw_records"]
    assert f"| raw records | {raw} | results/test/corpus/ingest_report.tsv |" in flow
    test_rows = len(pd.read_parquet(built / "results/test/splits/test.parquet"))
    assert f"| test documents | {test_rows} | results/test/splits/test.parquet |" in flow
    assert "| baseline | majority | accuracy |" in reforms
    # 5d quotes the evaluate rule's decision, whose path the report rule passes.
    selection = reforms.split("### 5d.")[1].split("###")[0]
    assert "> " in selection and "Source: `results/test/eval/decision.md`." in selection


def test_model_cards_replace_peft_template_with_hub_header_and_test_metrics(built):
    config = yaml.safe_load((built / "config/test.yaml").read_text())
    metrics = pd.read_csv(built / "results/test/eval/metrics.tsv", sep="\t")
    for variant in config["variants"]:
        for stage in ("sft", "dpo"):
            card = (built / f"results/test/models/{variant}/{stage}/README.md").read_text()
            assert card == (built / f"{REPORT}/model_cards/{variant}/{stage}.md").read_text()
            assert "[More Information Needed]" not in card
            header = yaml.safe_load(card.split("---\n")[1])
            assert header["base_model"] == config["model"]["base"]
            assert header["library_name"] == "peft"
            accuracy = metrics.query(
                "variant == @variant and stage == @stage and metric == 'accuracy'"
            )
            listed = header["model-index"][0]["results"][0]["metrics"]
            assert {"type": "accuracy", "value": round(accuracy.value.iloc[0], 4)} in listed
            assert "## Intended use and limits" in card


def test_data_card_environment_and_checksums(built):
    card = (built / REPORT / "data_card.md").read_text()
    for section in ("Sources", "Ingest", "Filters", "Duplicates", "Topics", "label balance",
                    "Leakage", "Data-sufficiency warnings"):  # fmt: skip
        assert section in card
    env = json.loads((built / REPORT / "environment.json").read_text())
    assert env["packages"]["snakemake"] and env["python"].startswith("3.11")
    assert set(env["git"]) == {"commit", "dirty", "changed_files"}
    sums = pd.read_csv(built / REPORT / "checksums.tsv", sep="\t")
    assert {"input", "config", "split", "predictions", "metrics"} <= set(sums.role)
    for path in ("resources/sotu/sotu.jsonl", "results/test/eval/metrics.tsv"):
        digest = hashlib.sha256((built / path).read_bytes()).hexdigest()
        assert sums.set_index("path").loc[path, "sha256"] == digest


def test_snakemake_report_has_a_caption_on_every_result(built):
    snakemake(built, "--report", "report.html")
    html = (built / "report.html").read_text()
    captions = re.findall(r'"caption": "(.*?)(?<!\\)"', html)
    # Stage folders show 4 files each; evaluate 6; tokenize 2 per variant; data half 8; report 5.
    assert len(captions) >= 25
    assert all(len(caption) > 40 for caption in captions)
    assert "workflow-desc" in html and "REFORMS" in html


def test_a_reordered_config_plans_no_job(built):
    config = yaml.safe_load((built / "config/test.yaml").read_text())
    (built / "config/reordered.yaml").write_text(
        yaml.safe_dump(reversed_keys(config), sort_keys=False)
    )
    jobs, text = dry_run(built, "config/reordered.yaml")
    assert jobs == {}, text[-3000:]
    assert "Nothing to be done" in text


def test_one_training_hyperparameter_replans_training_and_what_follows_only(built):
    config = yaml.safe_load((built / "config/test.yaml").read_text())
    config["training"]["learning_rate"] *= 2
    (built / "config/lr.yaml").write_text(yaml.safe_dump(config))
    jobs, text = dry_run(built, "config/lr.yaml")
    variants = len(config["variants"])
    shards = config.get("inference", {}).get("shards", 1)
    assert jobs == {
        "sft": variants,
        "dpo": variants,
        "infer": 2 * variants * shards,  # the sft and dpo stages; the base stage is unchanged
        "gather_predictions": 2 * variants,
        "perplexity": 2 * variants,
        "evaluate": 1,
        # Annotation follows the evaluation (what it reads to choose), not its input table.
        "choose_stage": 1,
        "annotate_shard": load_config(built / "config/lr.yaml")["annotate"]["shards"],
        "gather_annotations": 1,
        "estimate_shares": 1,
        "annotation_card": 1,
        "report": 1,
        "all": 1,
    }, text[-3000:]
    assert "stage=base" not in text


def test_archive_unpacked_in_an_empty_folder_reruns_to_identical_metrics(built, tmp_path):
    archive = "results/test/archive/locallm-replication.tar.gz"
    snakemake(built, archive)
    with tarfile.open(built / archive) as tar:
        tar.extractall(tmp_path, filter="data")
    (root,) = tmp_path.iterdir()
    replication = root / "replication"
    assert {p.name for p in replication.iterdir()} == {
        "config.yaml", "checksums.tsv", "environment.json", "requirements.lock", "manifest.json",
        "README.md",
    }  # fmt: skip
    assert not (root / "results").exists()
    lock = (replication / "requirements.lock").read_text()
    assert re.search(r"^snakemake==\S+$", lock, flags=re.MULTILINE)
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2",
         "--configfile=replication/config.yaml", "results/test/eval/metrics.tsv"],
        cwd=root, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-6000:]
    original = (built / "results/test/eval/metrics.tsv").read_bytes()
    assert (root / "results/test/eval/metrics.tsv").read_bytes() == original
    sums = pd.read_csv(replication / "checksums.tsv", sep="\t").set_index("path")
    assert (
        sums.loc["results/test/eval/metrics.tsv", "sha256"] == hashlib.sha256(original).hexdigest()
    )
