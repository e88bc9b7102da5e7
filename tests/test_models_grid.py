"""config/models.yaml, the grid across models: SmolLM2-135M-Instruct and Gemma-3-270M, each at every
stage, planned by a dry run (nothing is downloaded or trained here)."""

import re

import yaml
from conftest import ROOT, copy_workflow, snakemake
from locallm.config import load_config
from locallm.config_checks import config_problems
from test_workflow_planning import BLOCKER, planned_jobs

CONFIG = "config/models.yaml"


def test_the_models_config_has_no_problems_and_a_test_split_for_intervals():
    config = load_config(ROOT / CONFIG)
    assert config_problems(config) == []
    bases = {name: v["base"] for name, v in config["variants"].items()}
    assert bases == {"smollm2": "builtin:smollm2-135m-instruct", "gemma": "builtin:gemma-3-270m"}
    assert config["inference"]["stages"] == ["base", "fewshot", "sft", "dpo"]
    assert all(v["method"] == "qlora" for v in config["variants"].values())


def test_the_models_grid_is_planned_for_every_model_and_stage_without_torch(tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    result = snakemake(workdir, "-n", configfile=CONFIG, env={"PYTHONPATH": str(blocker)})
    output = result.stdout + result.stderr
    assert "imported while Snakemake plans the DAG" not in output
    for rule in ("fetch_builtin", "convert_gguf", "tokenize", "sft", "dpo"):
        assert planned_jobs(result, rule) == 2, rule  # one per model
    assert planned_jobs(result, "gather_predictions") == 8  # 2 models x 4 stages
    assert planned_jobs(result, "evaluate") == 1  # one table comparing them all
    # Before anything is fetched, pre-flight already says base or instruct and each format.
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\s*(gemma|smollm2) .*$", output, re.M)}
    assert re.search(r"qlora\s.*base\s+completion\s+gemma", rows["gemma"])
    assert re.search(r"qlora\s.*instruct\s+chat\s+apache-2.0", rows["smollm2"])


def test_without_accepting_the_gemma_terms_the_grid_is_refused_before_any_job(tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    config = yaml.safe_load((workdir / CONFIG).read_text())
    del config["model"]["accept_licences"]
    (workdir / CONFIG).write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "-n", configfile=CONFIG, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "builtin:gemma-3-270m is licensed under its own terms (gemma)" in output
    assert "add 'gemma' to model.accept_licences" in output
    assert "Job stats" not in output
