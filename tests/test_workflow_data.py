"""The workflow as a user runs it: dry-run, lint, and the data half on config/test.yaml."""

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
from conftest import ROOT, copy_workflow, snakemake


def snakemake_output(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Snakemake commands that write nothing (dry-run, lint, graph), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True
    )


def test_dry_run_of_default_config_prints_the_dag(tmp_path):
    # In a fresh copy: results already built in the checkout would leave those jobs out.
    result = snakemake_output("-n", "--cores", "1", cwd=copy_workflow(tmp_path))
    assert result.returncode == 0, result.stderr
    for rule in ["ingest", "minhash", "dedup", "filter", "split"]:
        assert f"rule {rule}:" in result.stdout or f"localrule {rule}:" in result.stdout


def test_lint_is_clean():
    result = snakemake_output("--lint")
    assert (
        "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr
    ), result.stdout + result.stderr


def test_data_half_accounts_for_every_record(test_workflow):
    snakemake(test_workflow, "results/test/splits/split_report.tsv")
    corpus = pd.concat(
        pd.read_parquet(p)
        for p in sorted((test_workflow / "results/test/corpus").glob("*.parquet"))
    )
    filtered = pd.concat(
        pd.read_parquet(p)
        for p in sorted((test_workflow / "results/test/filtered").glob("*.parquet"))
    )
    filter_rejects = pd.concat(
        pd.read_parquet(p)
        for p in sorted((test_workflow / "results/test/filtered/rejects").glob("*.parquet"))
    )
    splits = {
        s: pd.read_parquet(test_workflow / f"results/test/splits/{s}.parquet")
        for s in ["train", "validation", "test"]
    }
    split_rejects = pd.read_parquet(test_workflow / "results/test/splits/rejects.parquet")

    assert corpus.doc_id.is_unique
    assert set(filtered.doc_id) | set(filter_rejects.doc_id) == set(corpus.doc_id)
    assert len(filtered) + len(filter_rejects) == len(corpus)
    in_splits = pd.concat(splits.values())
    assert len(in_splits) + len(split_rejects) == len(filtered)
    assert set(in_splits.doc_id) | set(split_rejects.doc_id) == set(filtered.doc_id)
    # No group straddles two splits.
    assert in_splits.groupby("group_id").split.nunique().max() == 1
    for columns in ["doc_id", "group_id", "text", "party", "year"]:
        assert columns in splits["train"].columns


def test_committed_rule_graph_shows_every_rule():
    """docs/rulegraph.svg is regenerated when rules change:
    `snakemake --rulegraph | dot -Tsvg > docs/rulegraph.svg`."""
    import re

    result = snakemake_output("--rulegraph", "--quiet", "all")
    assert result.returncode == 0, result.stderr
    rules = set(re.findall(r'label = "(\w+)"', result.stdout))
    assert {"ingest", "split", "sft", "evaluate"} <= rules
    svg = (ROOT / "docs" / "rulegraph.svg").read_text()
    shown = set(re.findall(r">(\w+)</text>", svg))
    assert rules == shown, (
        f"stale docs/rulegraph.svg: missing {rules - shown}, extra {shown - rules}"
    )


def test_a_configfile_replaces_the_demo_config_instead_of_merging_into_it(tmp_path):
    """Merged, the demo's variants would be trained beside the ones the user's file names."""
    result = snakemake_output("-n", "--configfile", "config/test.yaml", cwd=copy_workflow(tmp_path))
    assert result.returncode == 0, result.stderr
    job_stats = result.stdout + result.stderr
    counts = dict(re.findall(r"^(sft|dpo)\s+(\d+)$", job_stats, flags=re.MULTILINE))
    assert counts == {"sft": "1", "dpo": "1"}, job_stats
