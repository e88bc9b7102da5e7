"""Planning the DAG (`snakemake -n`): torch stays out of it, and variants that tokenize alike share
one tokenize job.
"""

import re
import subprocess
import sys

import yaml
from conftest import ROOT, copy_workflow, snakemake

# Imported by Python at start-up from PYTHONPATH: any import of torch or transformers then fails.
BLOCKER = """
import sys


class BlockHeavyImports:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            raise ImportError(f"{name} imported while Snakemake plans the DAG")
        return None


sys.meta_path.insert(0, BlockHeavyImports())
"""


def workflow_with_variants(tmp_path, variants: dict):
    """A copy of the workflow whose config/test.yaml has these variants."""
    workdir = copy_workflow(tmp_path / "workflow")
    config = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    config["variants"] = variants
    (workdir / "config" / "test.yaml").write_text(yaml.safe_dump(config))
    return workdir


def planned_jobs(result: subprocess.CompletedProcess, rule: str) -> int:
    """The count of `rule` in a dry-run's job table (0 when it plans none)."""
    found = re.search(rf"^{rule}\s+(\d+)\s*$", result.stdout + result.stderr, re.MULTILINE)
    return int(found.group(1)) if found else 0


def test_the_dag_is_planned_without_torch_or_transformers(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    env = {"PYTHONPATH": str(blocker)}
    probe = subprocess.run(
        [sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True
    )
    assert "imported while Snakemake plans the DAG" in probe.stderr  # the blocker works

    workdir = workflow_with_variants(
        tmp_path, {"qlora_r8": {"method": "qlora", "lora_r": 8}, "full": {"method": "full"}}
    )
    result = snakemake(workdir, "-n", env=env)
    assert planned_jobs(result, "sft") == 2
    assert "imported while Snakemake plans the DAG" not in result.stdout + result.stderr


def test_variants_that_tokenize_alike_share_one_tokenize_job(tmp_path):
    workdir = workflow_with_variants(
        tmp_path,
        {"r8": {"method": "qlora", "lora_r": 8}, "r16": {"method": "qlora", "lora_r": 16}},
    )
    result = snakemake(workdir, "-n")
    assert planned_jobs(result, "tokenize") == 1
    assert planned_jobs(result, "sft") == 2


def test_variants_that_tokenize_differently_plan_a_tokenize_job_each(tmp_path):
    workdir = workflow_with_variants(
        tmp_path,
        {"r8": {"method": "qlora", "lora_r": 8}, "short": {"method": "qlora", "max_length": 128}},
    )
    result = snakemake(workdir, "-n")
    assert planned_jobs(result, "tokenize") == 2
