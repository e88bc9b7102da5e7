"""Loading a base and a stage: local folders, Hub ids, 4-bit QLoRA, clear errors."""

import json

import pytest
import torch
from locallm.hashing import fingerprint
from locallm.model.loading import (
    AdapterMismatchError,
    ModelNotFoundError,
    load_stage_model,
    resolve_base_path,
)
from locallm.model.tiny import tiny_model, train_tokenizer

TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_layers": 2,
    "num_heads": 4,
    "context_length": 64,
}
TEXTS = ["The Congress shall make no law respecting an establishment of religion."] * 20


def settings(method: str = "lora", **extra) -> dict:
    return {"method": method, "trust_remote_code": False, "gradient_checkpointing": False, **extra}


def save_tiny(folder, seed: int = 0):
    """Save a tiny Llama and tokenizer into `folder`, as a user would save their own model."""
    tokenizer = train_tokenizer(TEXTS, vocab_size=300)
    model = tiny_model(tokenizer, TINY, seed)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def save_adapter(base_dir, folder) -> str:
    """A LoRA adapter initialised on `base_dir`, saved as the sft rule saves one."""
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load_stage_model(settings(), base_dir, None, trainable=True)
    peft_model = get_peft_model(
        model, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM")
    )
    peft_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("base"))


def test_resolve_base_path_returns_a_local_folder_as_is(base_dir):
    assert resolve_base_path({"base": base_dir}) == base_dir


def test_resolve_base_path_maps_builtin_tiny_to_the_bootstrapped_folder():
    assert (
        resolve_base_path({"base": "builtin:tiny"}, "results/models/base") == "results/models/base"
    )


def test_resolve_base_path_keeps_a_hub_id():
    assert resolve_base_path({"base": "Qwen/Qwen2.5-0.5B-Instruct"}) == "Qwen/Qwen2.5-0.5B-Instruct"


def test_missing_local_folder_says_where_it_looked(tmp_path):
    with pytest.raises(ModelNotFoundError, match="looked in .*nowhere"):
        resolve_base_path({"base": str(tmp_path / "nowhere" / "model")})


def test_unknown_hub_id_offline_says_where_it_looked_and_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        ModelNotFoundError, match="not found.*Hub cache.*hf download nobody/nothing"
    ):
        load_stage_model(settings(cache_dir=str(tmp_path)), "nobody/nothing", None)


def test_load_stage_model_loads_a_model_the_test_saved(base_dir):
    model, tokenizer = load_stage_model(settings(), base_dir, None)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert not model.training


def test_qlora_loads_the_base_in_4bit_and_trains_an_adapter(base_dir):
    import bitsandbytes as bnb
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load_stage_model(settings("qlora"), base_dir, None, trainable=True)
    four_bit = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(four_bit) == 2 * 7  # q, k, v, o, gate, up, down in each of 2 layers
    assert four_bit[0].weight.dtype == torch.uint8
    model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    ids = tokenizer("The Congress shall make", return_tensors="pt")["input_ids"]
    model(input_ids=ids, labels=ids).loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None for g in grads)


def test_adapter_is_applied_on_top_of_the_base(base_dir, tmp_path):
    adapter = save_adapter(base_dir, tmp_path / "sft")
    model, _ = load_stage_model(settings(), base_dir, adapter)
    from peft import PeftModel

    assert isinstance(model, PeftModel)
    assert any("lora_A" in name for name, _ in model.named_parameters())
    assert not any(p.requires_grad for p in model.parameters())


def test_adapter_trained_on_another_base_refuses_to_load(base_dir, tmp_path):
    other = save_tiny(tmp_path / "other", seed=1)
    adapter = save_adapter(other, tmp_path / "sft")
    (tmp_path / "sft" / "run_info.json").write_text(
        json.dumps({"base_fingerprint": fingerprint(other)})
    )
    with pytest.raises(AdapterMismatchError, match="trained on another base"):
        load_stage_model(settings(), base_dir, adapter)


def test_full_method_loads_the_stage_folder_as_the_whole_model(base_dir, tmp_path):
    model, tokenizer = load_stage_model(settings("full"), base_dir, None)
    with torch.no_grad():
        model.lm_head.weight.mul_(
            0
        )  # tied with the embeddings: a model that is clearly not the base
    model.save_pretrained(tmp_path / "sft")
    tokenizer.save_pretrained(tmp_path / "sft")
    loaded, _ = load_stage_model(settings("full"), base_dir, str(tmp_path / "sft"))
    assert loaded.lm_head.weight.abs().sum() == 0


def test_auto_precision_on_the_cpu_is_float32_even_with_bf16_instructions(monkeypatch):
    from locallm.model.precision import inference_dtype

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for fast in (True, False):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda f=fast: f)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        assert inference_dtype("auto") == torch.float32
    assert inference_dtype("bfloat16") == torch.bfloat16
    assert inference_dtype("float32") == torch.float32
    with pytest.raises(ValueError, match="inference.precision 'half'"):
        inference_dtype("half")


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_a_bfloat16_stage_computes_base_and_adapter_in_bfloat16_close_to_float32(
    base_dir, tmp_path, method
):
    from safetensors.torch import load_file, save_file

    adapter = save_adapter(base_dir, tmp_path / "sft")
    weights_file = tmp_path / "sft" / "adapter_model.safetensors"
    generator = torch.Generator().manual_seed(0)
    weights = {  # an adapter that changes the output (lora_B starts at zero)
        k: v + 0.05 * torch.randn(v.shape, generator=generator)
        for k, v in load_file(weights_file).items()
    }
    save_file(weights, weights_file)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    logits = {}
    for dtype in (torch.float32, torch.bfloat16):
        model, _ = load_stage_model(settings(method), base_dir, adapter, dtype=dtype)
        adapters = {p.dtype for name, p in model.named_parameters() if "lora_" in name}
        assert adapters == {dtype}
        with torch.no_grad():
            logits[dtype] = model(input_ids=ids).logits.float()
    difference = (logits[torch.float32] - logits[torch.bfloat16]).abs().max().item()
    assert 0 < difference < 0.1
