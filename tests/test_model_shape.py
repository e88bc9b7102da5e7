"""Model shapes from config.json or the meta device against real parameter counts."""

import json

import pytest
from conftest import TINY_LLAMA_CONFIG
from locallm.model.memory import estimate_training
from locallm.model.shape import LLAMA, shape_from_config, shape_from_meta, shape_from_tiny

TINY_CONFIG = {
    **TINY_LLAMA_CONFIG,
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "tie_word_embeddings": False,
}


def test_llama2_shapes_give_published_parameter_counts():
    assert LLAMA["7B"].params == pytest.approx(6.74e9, rel=0.001)
    assert LLAMA["13B"].params == pytest.approx(13.02e9, rel=0.001)
    assert LLAMA["70B"].params == pytest.approx(68.98e9, rel=0.001)


def test_shape_from_config_counts_what_transformers_builds(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_CONFIG))
    assert shape_from_config(TINY_CONFIG).params == shape_from_meta(tmp_path).params


def test_the_checkpoint_dtype_comes_from_the_config():
    assert shape_from_config(TINY_CONFIG).checkpoint_dtype == "float32"
    assert shape_from_config({**TINY_CONFIG, "dtype": "bfloat16"}).checkpoint_dtype == "bfloat16"
    older = {**TINY_CONFIG, "torch_dtype": "float16"}  # the name before transformers 5
    assert shape_from_config(older).checkpoint_dtype == "float16"


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


def test_builtin_tiny_is_shaped_from_the_config_as_bootstrap_builds_it():
    from locallm.config import with_defaults
    from locallm.model.tiny import tiny_model, train_tokenizer

    tiny = with_defaults({})["model"]["tiny"]
    tokenizer = train_tokenizer(["a few words", "and a few more"], vocab_size=tiny["vocab_size"])
    model = tiny_model(tokenizer, tiny, seed=0)
    shape = shape_from_tiny({**tiny, "vocab_size": len(tokenizer)})
    assert shape.params == sum(p.numel() for p in model.parameters())


def test_the_context_length_is_read_as_inference_and_preflight_read_it():
    # GPT-2 style configs name it n_positions: one reader (locallm.task.context) for every caller.
    config = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
              "num_attention_heads": 4, "vocab_size": 100, "n_positions": 333}  # fmt: skip
    assert shape_from_config(config).context_length == 333
