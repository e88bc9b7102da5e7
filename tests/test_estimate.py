"""The GPU memory estimator against published figures and against real parameter counts."""

import json

import pytest
from locallm.config import variant_settings, with_defaults
from locallm.estimate import (
    GB,
    LLAMA,
    ModelShape,
    activation_bytes,
    count_params_empty,
    estimate_training,
    gpu_resources,
    main,
    shape_from_config,
    shape_from_meta,
    variant_shape,
    weight_bytes,
)

TINY_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 300,
    "hidden_size": 64,
    "intermediate_size": 160,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
    "tie_word_embeddings": False,
}


def test_llama2_shapes_give_published_parameter_counts():
    assert LLAMA["7B"].params == pytest.approx(6.74e9, rel=0.001)
    assert LLAMA["13B"].params == pytest.approx(13.02e9, rel=0.001)
    assert LLAMA["70B"].params == pytest.approx(68.98e9, rel=0.001)


def test_full_finetuning_of_7b_needs_112_to_126_gb_before_activations():
    # Transformer Math 101: 16-18 bytes per parameter for mixed-precision AdamW; a "7B" model at
    # 7e9 parameters therefore needs 112-126 GB before activations.
    estimate = estimate_training(LLAMA["7B"], "full", seq_len=512, batch_size=1)
    bytes_per_param = estimate.before_activations / estimate.params
    assert 16 <= bytes_per_param <= 18
    assert 112 <= 7e9 * bytes_per_param / GB <= 126


def test_qlora_65b_fits_under_48_gb():
    # QLoRA paper: finetuning a 65B model in under 48 GB (seq 512, batch 1, checkpointing).
    estimate = estimate_training(LLAMA["65B"], "qlora", seq_len=512, batch_size=1, lora_r=16)
    assert estimate.total < 48 * GB
    # and it is not a trivial bound: the 4-bit weights alone take most of it
    assert estimate.weights > 30 * GB


def test_qlora_weights_take_about_half_a_byte_per_quantized_parameter():
    shape = ModelShape(32000, 4096, 11008, 32, 32, 32, 128, tie_word_embeddings=True)
    unquantized = (shape.embedding_params + shape.norm_params) * 4
    per_param = (weight_bytes(shape, "qlora") - unquantized) / shape.linear_params
    assert per_param == pytest.approx(0.5 + 0.127 / 8, abs=1e-3)


def test_recomputation_keeps_two_bytes_per_token_hidden_unit_and_layer():
    shape = LLAMA["7B"]
    s, b, h, n_layers, a = 512, 2, 4096, 32, 32
    assert activation_bytes(shape, s, b, gradient_checkpointing=True) == 2 * s * b * h * n_layers
    full = activation_bytes(shape, s, b, gradient_checkpointing=False)
    assert full == pytest.approx(s * b * h * n_layers * (34 + 5 * a * s / h))


def test_lora_trains_fewer_parameters_and_needs_less_memory_than_full():
    full = estimate_training(LLAMA["13B"], "full", seq_len=1024, batch_size=1)
    lora = estimate_training(LLAMA["13B"], "lora", seq_len=1024, batch_size=1, lora_r=16)
    qlora = estimate_training(LLAMA["13B"], "qlora", seq_len=1024, batch_size=1, lora_r=16)
    assert lora.trained_params < full.trained_params / 100
    assert qlora.total < lora.total < full.total


def test_shape_from_config_counts_what_transformers_builds(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_CONFIG))
    assert shape_from_config(TINY_CONFIG).params == count_params_empty(tmp_path)


def test_lora_parameter_count_matches_peft_all_linear():
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = {k: v for k, v in TINY_CONFIG.items() if k not in ("architectures", "model_type")}
    model = LlamaForCausalLM(LlamaConfig(**config))
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert shape_from_config(TINY_CONFIG).lora_params(4) == trainable


def test_shape_from_config_rejects_a_config_without_llama_fields():
    with pytest.raises(ValueError, match="n_embd|hidden_size"):
        shape_from_config({"n_embd": 768, "n_layer": 12})


GPT2_CONFIG = {
    "model_type": "gpt2",
    "vocab_size": 300,
    "n_embd": 64,
    "n_layer": 2,
    "n_head": 4,
    "n_positions": 128,
}


def test_an_architecture_without_a_shape_rule_is_counted_on_the_meta_device(tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2Config, GPT2LMHeadModel

    (tmp_path / "config.json").write_text(json.dumps(GPT2_CONFIG))
    shape = shape_from_meta(tmp_path)
    torch.manual_seed(0)
    settings = {k: v for k, v in GPT2_CONFIG.items() if k != "model_type"}
    model = GPT2LMHeadModel(GPT2Config(**settings))
    assert shape.params == sum(p.numel() for p in model.parameters())
    # GPT-2's attention and MLP are Conv1D layers: 4 per block, each (in x out) weights.
    assert shape.linear_params == 2 * (64 * 192 + 64 * 64 + 64 * 256 + 256 * 64)
    assert (shape.hidden_size, shape.num_layers, shape.context_length) == (64, 2, 128)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert shape.lora_params(4) == trainable
    assert estimate_training(shape, "qlora", seq_len=128, batch_size=2).total > 0


def test_builtin_tiny_is_sized_from_the_config_before_it_is_built():
    config = with_defaults({})
    settings = variant_settings(config, "default")
    shape = variant_shape(settings, None, config["model"]["tiny"])
    assert shape.hidden_size == config["model"]["tiny"]["hidden_size"]
    resources = gpu_resources(settings, shape, config["hpc"])
    assert resources["gpu"] == settings["num_processes"]
    assert resources["mem_mb"] == settings["mem_mb"]  # the tiny checkpoint is far smaller
    assert 0 < resources["gpu_mem_mb"] < 2000


def test_gpu_resources_ask_one_gpu_per_process_and_host_ram_for_the_checkpoint():
    config = with_defaults({"training": {"method": "qlora", "num_processes": 2}})
    settings = variant_settings(config, "default")
    resources = gpu_resources(settings, LLAMA["13B"], config["hpc"])
    assert resources["gpu"] == 2
    assert resources["mem_mb"] >= 2 * 13.02e9 * 2 / 1e6  # bf16 checkpoint per process
    assert resources["gpu_mem_mb"] > 7000


def test_missing_hub_model_names_the_fetch_rule(tmp_path):
    settings = {"base": "meta-llama/Llama-2-7b-hf"}
    with pytest.raises(FileNotFoundError, match="fetch_base"):
        variant_shape(settings, tmp_path, {})


def test_cli_prints_a_row_per_model_and_method(capsys):
    main([])
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[2:]]
    assert [(r[0], r[1]) for r in rows] == [
        (m, k) for m in ("7B", "13B", "70B") for k in ("full", "lora", "qlora")
    ]
