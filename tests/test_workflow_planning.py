"""Planning the DAG (`snakemake -n`): torch stays out of it, variants that tokenize alike share one
tokenize job, `threads: auto` lets independent jobs overlap, and the jobs of the longest training
chain start first.
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
        if name.split(".")[0] in ("torch", "transformers", "bitsandbytes", "peft", "trl", "scipy"):
            raise ImportError(f"{name} imported while Snakemake plans the DAG")
        return None


sys.meta_path.insert(0, BlockHeavyImports())
"""


def workflow_with_variants(
    tmp_path, variants: dict, auto_threads: bool = False, hpc: dict | None = None
):
    """A copy of the workflow whose config/test.yaml has these variants (and default threads)."""
    workdir = copy_workflow(tmp_path / "workflow")
    config = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    config["variants"] = variants
    # test.yaml names a variant to annotate with; these variants replace it (dry-runs only).
    config.get("annotate", {}).pop("use", None)
    if hpc:
        config["hpc"] = hpc
    if auto_threads:
        config["training"].pop("threads", None)
        config.get("inference", {}).pop("threads", None)
    (workdir / "config" / "test.yaml").write_text(yaml.safe_dump(config))
    return workdir


def planned_jobs(result: subprocess.CompletedProcess, rule: str) -> int:
    """The count of `rule` in a dry-run's job table (0 when it plans none)."""
    found = re.search(rf"^{rule}\s+(\d+)\s*$", result.stdout + result.stderr, re.MULTILINE)
    return int(found.group(1)) if found else 0


def test_the_dag_is_planned_without_torch_transformers_bitsandbytes_peft_trl_or_scipy(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    env = {"PYTHONPATH": str(blocker)}
    for heavy in ("torch", "bitsandbytes", "peft", "trl", "scipy"):
        probe = subprocess.run(
            [sys.executable, "-c", f"import {heavy}"], env=env, capture_output=True, text=True
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


def planned_threads(result: subprocess.CompletedProcess, rule: str) -> set[int]:
    """The threads of every planned job of `rule` (a dry-run shows them only when above 1)."""
    jobs = re.split(r"^(?:local)?rule ", result.stdout + result.stderr, flags=re.MULTILINE)
    threads = set()
    for job in jobs:
        if job.startswith(f"{rule}:"):
            shown = re.search(r"^\s+threads: (\d+)", job, re.MULTILINE)
            threads.add(int(shown.group(1)) if shown else 1)
    return threads


def test_auto_threads_share_the_cores_among_variants_so_their_jobs_overlap(tmp_path):
    two = {"r8": {"method": "qlora", "lora_r": 8}, "full": {"method": "full"}}
    result = snakemake(workflow_with_variants(tmp_path / "two", two, auto_threads=True), "-n")
    assert planned_threads(result, "bootstrap_base") == {2}  # alone: both cores
    assert planned_threads(result, "sft") == {1}  # two variants on 2 cores: one each
    assert planned_threads(result, "infer") == {1}

    one = {"r8": {"method": "qlora", "lora_r": 8}}
    result = snakemake(workflow_with_variants(tmp_path / "one", one, auto_threads=True), "-n")
    assert planned_threads(result, "sft") == {2}  # a lone variant's job gets every core


def test_auto_threads_with_a_gguf_base_plan_the_conversion_with_every_core(tmp_path):
    """convert_gguf once read training.threads raw: `auto` crashed the dry run."""
    variants = {"r8": {"method": "qlora", "lora_r": 8, "base": "builtin:smollm2-135m-instruct"}}
    workdir = workflow_with_variants(tmp_path, variants, auto_threads=True)
    result = snakemake(workdir, "-n")
    assert planned_jobs(result, "convert_gguf") == 1
    assert planned_threads(result, "convert_gguf") == {2}  # alone: both cores


def test_no_rule_sizes_its_jobs_from_the_raw_config():
    """threads: and resources: come from PLAN alone (Plan.threads, Plan.resources)."""
    sizing = re.compile(r"^    (threads|resources):(.*(?:\n        .*)*)", re.MULTILINE)
    found = [
        f"{path.name}: {match.group(0).strip()}"
        for path in sorted((ROOT / "workflow" / "rules").glob("*.smk"))
        for match in sizing.finditer(path.read_text())
    ]
    assert len(found) > 10  # the pattern sees the rules' sizing
    assert [f for f in found if "PLAN." not in f or "config[" in f] == []


def test_a_config_without_a_name_writes_under_its_files_stem(tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    config = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    del config["name"]
    (workdir / "config" / "my_study.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "-n", configfile="config/my_study.yaml")
    printed = result.stdout + result.stderr
    assert "results/my_study/corpus/ingest_report.tsv" in printed
    assert "logs/my_study/ingest/000.log" in printed
    assert "benchmarks/my_study/ingest/000.tsv" in printed
    assert not re.search(r"\bresults/(?!my_study/)\w+/\w", printed.replace("resources/", ""))


def test_two_configs_coexist_and_switching_back_plans_nothing(tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    config = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    config["name"] = "other"
    config["corpus"]["chunk_chars"] = 800  # another corpus: its own results
    (workdir / "config" / "other.yaml").write_text(yaml.safe_dump(config))
    snakemake(workdir, "results/test/corpus/ingest_report.tsv")
    first = (workdir / "results/test/corpus/000.parquet").read_bytes()
    snakemake(workdir, "results/other/corpus/ingest_report.tsv", configfile="config/other.yaml")
    assert (workdir / "results/other/corpus/000.parquet").read_bytes() != first
    assert (workdir / "results/test/corpus/000.parquet").read_bytes() == first
    back = snakemake(workdir, "-n", "results/test/corpus/ingest_report.tsv")
    assert "Nothing to be done" in back.stdout + back.stderr


def test_hpc_fit_error_stops_the_dag_when_a_variant_cannot_fit_the_gpu(tmp_path):
    small_gpu = {"gpu_memory_gb": 0.001, "fit_error": True}
    variants = {"r8": {"method": "qlora", "lora_r": 8}}
    result = snakemake(
        workflow_with_variants(tmp_path / "error", variants, hpc=small_gpu), "-n", check=False
    )
    assert result.returncode != 0
    printed = result.stdout + result.stderr
    assert "hpc.fit_error is on" in printed
    assert "variant r8 (builtin:tiny, qlora): estimated" in printed
    assert planned_jobs(result, "sft") == 0

    warn_only = {**small_gpu, "fit_error": False}
    result = snakemake(workflow_with_variants(tmp_path / "warn", variants, hpc=warn_only), "-n")
    assert planned_jobs(result, "sft") == 1


def planned_priorities(result: subprocess.CompletedProcess, rule: str) -> dict[str, int]:
    """{wildcards: priority} of every job of `rule` (a dry-run shows it only when above 0)."""
    jobs = re.split(r"^(?:local)?rule ", result.stdout + result.stderr, flags=re.MULTILINE)
    priorities = {}
    for job in jobs:
        if job.startswith(f"{rule}:"):
            wildcards = re.search(r"^\s+wildcards: (.*)$", job, re.MULTILINE)
            shown = re.search(r"^\s+priority: (\d+)", job, re.MULTILINE)
            priorities[wildcards.group(1) if wildcards else ""] = (
                int(shown.group(1)) if shown else 0
            )
    return priorities


def test_jobs_of_the_longest_training_chain_are_planned_to_start_first(tmp_path):
    variants = {
        "full": {"method": "full", "max_steps": 12, "dpo_max_steps": 4},
        "r8": {"method": "qlora", "lora_r": 8, "max_steps": 6, "dpo_max_steps": 2},
    }
    result = snakemake(workflow_with_variants(tmp_path, variants), "-n")
    assert planned_priorities(result, "sft") == {"variant=full": 16, "variant=r8": 8}
    assert planned_priorities(result, "dpo") == {"variant=full": 16, "variant=r8": 8}
    assert set(planned_priorities(result, "tokenize").values()) == {16}
    # Inference waits behind no priority: it fills the cores the training chain leaves free.
    assert set(planned_priorities(result, "infer").values()) == {0}
    assert set(planned_priorities(result, "perplexity").values()) == {0}


def test_a_workflow_whose_library_differs_from_the_installed_locallm_stops_with_the_fix(tmp_path):
    # Jobs would import the installed (other clone's) locallm: Snakemake appends the script folder
    # after site-packages. A copy of the same code passes (every other test runs one).
    workdir = copy_workflow(tmp_path)
    metrics = workdir / "workflow" / "scripts" / "locallm" / "evaluation" / "metrics.py"
    metrics.write_text(metrics.read_text() + "\n# edited in this clone only\n")
    result = snakemake(workdir, "-n", check=False)
    assert result.returncode != 0
    printed = result.stdout + result.stderr
    assert "is not this workflow's code" in printed
    assert f"pip install -e {workdir.resolve()}" in printed


def test_a_config_file_with_a_duplicate_key_or_yes_stops_the_dag_naming_the_line(tmp_path):
    workdir = copy_workflow(tmp_path)
    config = workdir / "config" / "test.yaml"
    config.write_text(config.read_text() + "seed: 7\nseed: 8\ncorpus_extra: yes\n")
    result = snakemake(workdir, "-n", check=False)
    printed = result.stdout + result.stderr
    assert result.returncode != 0
    assert "key 'seed' appears again" in printed
    assert "'yes' is read as the boolean True (YAML 1.1)" in printed


def test_a_top_level_typo_prints_the_key_not_the_schema(tmp_path):
    workdir = copy_workflow(tmp_path)
    config = workdir / "config" / "test.yaml"
    config.write_text(config.read_text() + "evalution: {}\n")
    result = snakemake(workdir, "-n", check=False)
    printed = result.stdout + result.stderr
    assert result.returncode != 0
    assert "'evalution' was unexpected" in printed
    assert len(printed.splitlines()) < 40
