"""locallm.plan: typed settings per stage with the params rules have always passed, stage inputs,
cached job resources, the fit check, and no heavy import."""

import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml
from conftest import ROOT
from locallm import plan as plan_module
from locallm.config import load_config, variant_settings, with_defaults
from locallm.plan import JOB_KEYS, Plan
from locallm.settings import DPOSettings, InferenceSettings, SFTSettings


def ci_config():
    return load_config(ROOT / "config" / "test.yaml")


def schema_keys(section: str) -> set[str]:
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    if section == "training":
        return set(schema["$defs"]["training_options"]["properties"])
    return set(schema["properties"][section]["properties"])


def test_every_training_key_is_a_field_of_a_stage_or_job_sizing():
    # A key added to the schema but not to the dataclasses would be dropped from params silently.
    fields = set(DPOSettings.__dataclass_fields__)
    assert schema_keys("training") - set(JOB_KEYS) <= fields
    loading = {"base", "revision", "trust_remote_code", "cache_dir"}
    assert fields - schema_keys("training") == loading


def test_every_inference_key_is_a_field_or_job_sizing():
    assert schema_keys("inference") - set(JOB_KEYS) == set(InferenceSettings.__dataclass_fields__)


def test_stage_params_are_the_variant_settings_split_as_the_rules_always_passed_them():
    config = with_defaults(
        {"variants": {"big": {"lora_r": 64, "dpo_beta": 0.5}}, "model": {"cache_dir": "/c"}}
    )
    variant = Plan(config).variants["big"]
    settings = {**variant_settings(config, "big"), "cache_dir": "/c"}
    expected_dpo = {k: v for k, v in settings.items() if k not in JOB_KEYS}
    assert variant.dpo.params() == expected_dpo
    assert list(variant.dpo.params()) == sorted(expected_dpo)  # params compared by repr
    assert variant.sft.params() == {
        k: v for k, v in expected_dpo.items() if not k.startswith("dpo_")
    }
    assert isinstance(variant.sft, SFTSettings) and variant.sft.lora_r == 64
    assert variant.loading.params() == {
        "base": "builtin:tiny",
        "cache_dir": "/c",
        "chat_template": None,
        "completion_format": "{prompt}\nAnswer: {answer}\n\n",
        "method": "qlora",
        "prompt_format": "auto",
        "revision": None,
        "trust_remote_code": False,
    }


def test_inference_and_perplexity_params_leave_out_job_sizing():
    config = ci_config()
    plan = Plan(config)
    inference = plan.inference_settings.params()
    assert inference == {k: v for k, v in config["inference"].items() if k not in JOB_KEYS}
    assert set(plan.perplexity_settings.params()) == {
        "perplexity_batch_size",
        "perplexity_max_texts",
        "perplexity_max_tokens",
    }


def job(variant: str, stage: str | None = None) -> SimpleNamespace:
    """The wildcards Snakemake passes to an input or params function."""
    return SimpleNamespace(variant=variant, stage=stage)


def test_stage_inputs_name_the_base_the_workflow_builds():
    config = with_defaults({"variants": {"tiny": {}, "hub": {"base": "owner/model"}}})
    plan = Plan(config)
    assert plan.sft_input(job("tiny")) == {
        "data": f"results/default/tokenized/{plan.variants['tiny'].tokenization}/data",
        "base": "results/default/models/base",
    }
    assert "base" not in plan.dpo_input(job("hub"))
    assert (
        plan.infer_input(job("tiny", "fewshot"))["examples"]
        == "results/default/splits/train.parquet"
    )
    assert plan.infer_input(job("hub", "sft"))["adapter"] == "results/default/models/hub/sft"
    assert "adapter" not in plan.perplexity_input(job("hub", "base"))
    with pytest.raises(ValueError, match="no adapter"):
        plan.merge_input(job("tiny", "base"))
    assert (
        plan.checkpoints(job("hub"), ["results/default/models/hub/dpo"])
        == "results/default/checkpoints/hub/dpo"
    )


def test_targets_cover_every_variant_and_stage_once():
    config = with_defaults({"variants": {"a": {}, "b": {"lora_r": 4}}})
    plan = Plan(config)
    targets = plan.targets()
    assert len(targets) == len(set(targets))
    assert "results/default/models/b/dpo" in targets
    assert "results/default/predictions/a/fewshot.parquet" in targets
    assert "results/default/eval/decision.md" in targets
    assert len(plan.tokenizations) == 1  # a and b tokenize alike


def test_job_resources_are_estimated_once_per_variant_and_stage(monkeypatch):
    calls = []

    def fake_resources(config, variant, stage="train"):
        calls.append((variant, stage))
        return {"gpu": 1, "mem_mb": 1000, "gpu_mem_mb": 500}

    monkeypatch.setattr(plan_module, "job_resources", fake_resources)
    plan = Plan(with_defaults({"variants": {"a": {}, "b": {}}}), cores=4)
    for _ in range(5):  # threads, mem_mb, runtime, gpu, gpu_mem_mb of a job
        plan.training_resources("a")
    plan.gpu_resources("a", "infer")
    plan.gpu_resources("a", "infer")
    assert calls == [("a", "train"), ("a", "infer")]
    assert plan.training_resources("a")["threads"] == 2  # auto: 4 cores shared by 2 variants


def test_resources_of_a_rule_come_from_the_plan_alone(tmp_path, monkeypatch):
    # In an empty folder: the demo corpus (resources/sotu/sotu.jsonl) is not there to be sized.
    monkeypatch.chdir(tmp_path)
    plan = Plan(with_defaults({"variants": {"a": {"mem_mb": 3000}, "b": {}}}), cores=4)
    wildcards = job("a")
    sft = plan.resources("sft")
    assert {key: value(wildcards) for key, value in sft.items()} == {
        key: value for key, value in plan.training_resources("a").items() if key != "threads"
    }
    assert plan.threads("sft")(wildcards) == 2  # auto: 4 cores shared by 2 variants
    assert plan.threads("merge") == 1 and set(plan.resources("merge")) == {"mem_mb"}
    # Data-half jobs ask memory from the corpus size (locallm.data.job_memory): with no corpus file
    # yet, each asks its fixed part alone.
    assert plan.threads("dedup") == 1 and plan.resources("dedup") == {"mem_mb": 500}
    assert plan.resources("dedup_bucket") == {"mem_mb": 400}
    assert plan.threads("gather_predictions") == 1 and plan.resources("gather_predictions") == {}
    # A lone job resolves `auto` to every core, whatever the base.
    assert plan.threads("convert_gguf") == 4 and plan.threads("bootstrap_base") == 4


def test_fit_problems_name_the_variant_whose_estimate_exceeds_the_gpu():
    config = with_defaults(
        {
            "variants": {"small": {}, "many": {"num_processes": 8}},
            "hpc": {"gpu_memory_gb": 0.001, "gpus_per_node": 4},
        }
    )
    problems = Plan(config).fit_problems()
    assert any(p.startswith("variant small (builtin:tiny, qlora): estimated") for p in problems)
    assert any("num_processes 8 > hpc.gpus_per_node 4" in p for p in problems)
    roomy = with_defaults({"variants": {"small": {}}})
    assert Plan(roomy).fit_problems() == []


def test_planning_imports_no_ml_library():
    code = (
        "import sys; from locallm.plan import Plan; from locallm.config import load_config\n"
        f"Plan(load_config({str(ROOT / 'config' / 'test.yaml')!r})).targets()\n"
        "heavy = {'torch', 'transformers', 'bitsandbytes', 'peft', 'trl', 'accelerate', 'scipy'}\n"
        "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
