"""The GPU and host memory estimators against published figures and measured structure."""

from dataclasses import replace

import pytest
from conftest import TINY_LLAMA_CONFIG
from locallm.config import variant_settings, with_defaults
from locallm.model.memory import (
    GB,
    activation_bytes,
    estimate_host_training,
    estimate_training,
    gpu_resources,
    layer_saved_elements,
    main,
    weight_bytes,
)
from locallm.model.shape import LLAMA, ModelShape, shape_from_config, shape_from_tiny

TINY_LLAMA = {**TINY_LLAMA_CONFIG, "attn_implementation": "sdpa"}


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


def test_builtin_tiny_is_sized_from_the_config_before_it_is_built():
    config = with_defaults({})
    settings = variant_settings(config, "default")
    shape = shape_from_tiny(config["model"]["tiny"])
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


def test_cli_prints_a_row_per_model_and_method(capsys):
    main([])
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[2:]]
    assert [(r[0], r[1]) for r in rows] == [
        (m, k) for m in ("7B", "13B", "70B") for k in ("full", "lora", "qlora")
    ]


def saved_elements_per_token(layers: int, method: str, lora_dropout: float) -> float:
    """Elements autograd keeps for the backward pass of a tiny Llama, per token (no parameters)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**{**TINY_LLAMA, "num_hidden_layers": layers})
    model = LlamaForCausalLM(config)
    if method == "lora":
        lora = LoraConfig(r=4, lora_dropout=lora_dropout, target_modules="all-linear")
        model = get_peft_model(model, lora)
    model.train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    ids = torch.randint(0, 300, (2, 32))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(input_ids=ids, labels=ids)
    return sum(kept.values()) / 4 / ids.numel()


@pytest.mark.parametrize(("method", "lora_dropout"), [("full", 0.0), ("lora", 0.0), ("lora", 0.1)])
def test_layer_activations_are_what_autograd_keeps_per_layer(method, lora_dropout):
    layer = saved_elements_per_token(2, method, lora_dropout) - saved_elements_per_token(
        1, method, lora_dropout
    )
    estimate = layer_saved_elements(shape_from_config(TINY_LLAMA), method, 4, lora_dropout > 0)
    assert estimate == pytest.approx(layer, rel=0.02)


SMOLLM2 = ModelShape(49152, 576, 1536, 30, 9, 3, 64, tie_word_embeddings=True)


def test_host_estimate_counts_a_checkpoint_in_the_compute_dtype_once():
    # A float32 file is mapped and its pages are the parameters; a bf16 one is converted to fp32.
    fp32 = estimate_host_training(SMOLLM2, "lora", seq_len=128, batch_size=2)
    assert fp32.checkpoint == SMOLLM2.params * 4 and fp32.weights == 0
    bf16 = replace(SMOLLM2, checkpoint_dtype="bfloat16")
    converted = estimate_host_training(bf16, "lora", seq_len=128, batch_size=2)
    assert converted.checkpoint == SMOLLM2.params * 2 and converted.weights == SMOLLM2.params * 4


def test_host_estimate_of_qlora_adds_the_nf4_weights_to_the_mapped_checkpoint():
    qlora = estimate_host_training(SMOLLM2, "qlora", seq_len=128, batch_size=2)
    lora = estimate_host_training(SMOLLM2, "lora", seq_len=128, batch_size=2)
    assert qlora.weights == pytest.approx(SMOLLM2.linear_params * (0.5 + 0.127 / 8), rel=1e-3)
    assert qlora.total - lora.total == pytest.approx(qlora.weights)


def test_host_estimate_with_checkpointing_keeps_each_layer_input_and_one_layer():
    kwargs = {"seq_len": 256, "batch_size": 4, "lora_r": 16}
    kept = estimate_host_training(SMOLLM2, "qlora", **kwargs).activations
    recomputed = estimate_host_training(
        SMOLLM2, "qlora", gradient_checkpointing=True, **kwargs
    ).activations
    assert kept == 1024 * 30 * layer_saved_elements(SMOLLM2, "qlora", 16, True) * 4
    assert recomputed == 1024 * (30 * 576 + layer_saved_elements(SMOLLM2, "qlora", 16, True)) * 4


def test_host_estimate_of_the_vocabulary_projection_stops_growing_at_one_tile():
    def head(batch):
        return estimate_host_training(SMOLLM2, "lora", seq_len=1024, batch_size=batch).logits

    assert head(2) == 2 * head(1)
    assert head(4) == head(8) == 8.5 * 4096 * 32768 * 4


def test_host_estimate_of_full_training_peaks_with_activations_or_gradients_not_both():
    estimate = estimate_host_training(SMOLLM2, "full", seq_len=128, batch_size=2)
    assert estimate.trained_states == 8 * SMOLLM2.params  # AdamW's two moments
    assert estimate.gradients == 4 * SMOLLM2.params
    above_weights = estimate.step - estimate.load - estimate.trained_states
    assert above_weights == max(estimate.gradients, estimate.activations + estimate.logits)
    assert estimate.total == estimate.libraries + max(estimate.load, estimate.step)


# google/gemma-3-270m's text config as transformers 5 writes it (every sixth layer attends to the
# whole context, the others to a window of 512 tokens).
GEMMA3_270M = {
    "model_type": "gemma3_text",
    "vocab_size": 262144,
    "hidden_size": 640,
    "intermediate_size": 2048,
    "num_hidden_layers": 18,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "tie_word_embeddings": True,
    "max_position_embeddings": 32768,
    "sliding_window": 512,
    "layer_types": [
        "full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(18)
    ],
}


def test_gemma3_shape_reads_its_sliding_window_layers_and_tied_large_vocabulary():
    shape = shape_from_config(GEMMA3_270M)
    assert shape.sliding_window == 512 and shape.sliding_layers == 15
    assert shape.attention == "sliding 512 on 15/18 layers"
    # Tied: the 262k x 640 embedding counted once, and it is most of the model.
    assert shape.embedding_params == 262144 * 640
    assert shape.embedding_params / shape.params > 0.6
    assert shape.kv_tokens(256) == 18 * 256  # shorter than the window: as full attention
    assert shape.kv_tokens(4096) == 15 * 512 + 3 * 4096


def test_the_kv_cache_of_sliding_layers_stops_growing_at_the_window():
    from locallm.model.memory import estimate_inference

    gemma = shape_from_config(GEMMA3_270M)
    full = replace(gemma, sliding_window=None, sliding_layers=0)
    kwargs = {"seq_len": 8192, "batch_size": 4}
    sliding = estimate_inference(gemma, "lora", **kwargs).activations
    everything = estimate_inference(full, "lora", **kwargs).activations
    assert everything == 2 * 18 * 4 * 8192 * 256 * 2  # K and V, bf16
    assert sliding == pytest.approx(everything * (15 * 512 + 3 * 8192) / (18 * 8192))


def test_gguf_sliding_attention_follows_the_gemma3_layer_pattern():
    from locallm.model.gguf_files import gguf_sliding_attention

    gemma = gguf_sliding_attention("gemma3", 512, 18)
    assert gemma == {"sliding_window": 512, "sliding_layers": 15}
    assert gguf_sliding_attention("llama", None, 30) == {}
