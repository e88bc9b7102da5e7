"""The shape of a decoder-only transformer, read from its config.json (or counted on the meta
device) without loading a weight: what the memory estimate (locallm.model.memory) needs of a
model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from locallm.model.facts import context_length


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs of a decoder-only transformer (LLaMA-style)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    tie_word_embeddings: bool = False
    context_length: int | None = None
    # Counted on the meta device for an architecture without a shape rule (shape_from_meta): all
    # parameters, those in the linear layers 4-bit quantization covers, and sum(in + out) over them.
    counted_params: int | None = None
    counted_linear_params: int | None = None
    counted_linear_in_out: int | None = None
    # The dtype the checkpoint's weights are stored in (config.json `dtype`), which is what passes
    # through host memory while the model loads.
    checkpoint_dtype: str = "float32"
    # Sliding-window attention (Gemma 3, Mistral): `sliding_layers` of the layers attend to the last
    # `sliding_window` tokens only, so their KV cache stops growing there.
    sliding_window: int | None = None
    sliding_layers: int = 0

    def kv_tokens(self, seq_len: int) -> int:
        """Tokens held in the KV cache, summed over layers, for a sequence of `seq_len` tokens."""
        if not self.sliding_window:
            return self.num_layers * seq_len
        window = min(seq_len, self.sliding_window)
        return self.sliding_layers * window + (self.num_layers - self.sliding_layers) * seq_len

    @property
    def attention(self) -> str:
        """How the layers attend, for the pre-flight table."""
        if not self.sliding_window or not self.sliding_layers:
            return "full"
        return f"sliding {self.sliding_window} on {self.sliding_layers}/{self.num_layers} layers"

    @property
    def layer_linear_params(self) -> int:
        """Weights of one layer's linear projections (q, k, v, o; gate, up, down)."""
        h, kv = self.hidden_size, self.num_kv_heads * self.head_dim
        attention = h * self.num_heads * self.head_dim * 2 + h * kv * 2
        return attention + 3 * h * self.intermediate_size

    @property
    def linear_params(self) -> int:
        """Parameters in the decoder layers' linear projections (what 4-bit quantization covers)."""
        if self.counted_linear_params is not None:
            return self.counted_linear_params
        return self.num_layers * self.layer_linear_params

    @property
    def embedding_params(self) -> int:
        """Input embeddings plus the LM head (once when tied)."""
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)

    @property
    def norm_params(self) -> int:
        """RMSNorm weights: two per layer and a final one."""
        return (2 * self.num_layers + 1) * self.hidden_size

    @property
    def params(self) -> int:
        """All parameters."""
        if self.counted_params is not None:
            return self.counted_params
        return self.linear_params + self.embedding_params + self.norm_params

    @property
    def unquantized_params(self) -> int:
        """Parameters 4-bit quantization leaves alone: embeddings, LM head, norms, biases."""
        return self.params - self.linear_params

    def lora_params(self, rank: int) -> int:
        """Trainable parameters of LoRA rank `rank` on every linear projection (all-linear)."""
        if self.counted_linear_in_out is not None:
            return rank * self.counted_linear_in_out
        h, i = self.hidden_size, self.intermediate_size
        q_out, kv_out = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        per_layer = (h + q_out) + 2 * (h + kv_out) + (q_out + h) + 2 * (h + i) + (i + h)
        return self.num_layers * rank * per_layer


# LLaMA-2 shapes (Touvron et al. 2023, and the released config.json files); 65B is LLaMA-1's.
LLAMA = {
    "7B": ModelShape(32000, 4096, 11008, 32, 32, 32, 128, context_length=4096),
    "13B": ModelShape(32000, 5120, 13824, 40, 40, 40, 128, context_length=4096),
    "65B": ModelShape(32000, 8192, 22016, 80, 64, 64, 128, context_length=2048),
    "70B": ModelShape(32000, 8192, 28672, 80, 64, 8, 128, context_length=4096),
}


def shape_from_config(config: dict[str, Any]) -> ModelShape:
    """A ModelShape from a Hugging Face config.json dict (LLaMA, Mistral, Qwen, Gemma style)."""
    config = config.get("text_config", config)
    try:
        hidden = config["hidden_size"]
        heads = config["num_attention_heads"]
        shape = ModelShape(
            vocab_size=config["vocab_size"],
            hidden_size=hidden,
            intermediate_size=config["intermediate_size"],
            num_layers=config["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=config.get("num_key_value_heads") or heads,
            head_dim=config.get("head_dim") or hidden // heads,
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            context_length=context_length(config),
            checkpoint_dtype=config.get("dtype") or config.get("torch_dtype") or "float32",
            **sliding_attention(config),
        )
    except KeyError as missing:
        raise ValueError(
            f"config.json has no {missing} field: not a LLaMA-style decoder; "
            "use shape_from_meta() for other architectures"
        ) from None
    return shape


def sliding_attention(config: dict[str, Any]) -> dict[str, int]:
    """`sliding_window` and `sliding_layers` from a config.json (its `layer_types` list, as Gemma 3
    and transformers 5 write it; a window without that list applies to every layer)."""
    window = config.get("sliding_window")
    if not window:
        return {}
    types = config.get("layer_types")
    layers = config["num_hidden_layers"]
    if types is not None:
        layers = sum(kind == "sliding_attention" for kind in types)
    return {"sliding_window": int(window), "sliding_layers": layers}


def shape_from_tiny(tiny: dict[str, Any]) -> ModelShape:
    """The shape of `builtin:tiny` from the config's model.tiny section (before it is built)."""
    return shape_from_config(
        {
            "vocab_size": tiny["vocab_size"],
            "hidden_size": tiny["hidden_size"],
            "intermediate_size": tiny["intermediate_size"],
            "num_hidden_layers": tiny["num_layers"],
            "num_attention_heads": tiny["num_heads"],
            "tie_word_embeddings": True,
            "max_position_embeddings": tiny["context_length"],
        }
    )


def read_model_config(model_dir: str | Path) -> dict[str, Any]:
    """config.json of a saved model folder, without loading any weight."""
    path = Path(model_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"no config.json in {Path(model_dir).resolve()}")
    return json.loads(path.read_text())


def empty_model(
    model_dir: str | Path, trust_remote_code: bool = False, gguf_file: str | None = None
):
    """The model of any architecture built on the meta device: its shapes, no memory (a GGUF's
    config comes from its metadata)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(
        model_dir, trust_remote_code=trust_remote_code, gguf_file=gguf_file
    )
    # torch's meta device, not accelerate's init_empty_weights: the latter re-creates each
    # parameter and so unties a tied LM head, counting it twice.
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)


def shape_from_meta(
    model_dir: str | Path, trust_remote_code: bool = False, gguf_file: str | None = None
) -> ModelShape:
    """A ModelShape for an architecture without a shape rule (GPT-2, Phi, ...): parameters counted
    on the meta device, linear layers found by type; widths from the config's standard names
    (transformers maps n_embd, n_layer, n_head onto them) size the activations and KV cache."""
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    model = empty_model(model_dir, trust_remote_code, gguf_file)
    head = model.get_output_embeddings()
    linear_params = linear_in_out = 0
    for module in model.modules():
        if module is head:
            continue
        if isinstance(module, nn.Linear):
            linear_params += module.weight.numel()
            linear_in_out += module.in_features + module.out_features
        elif isinstance(module, Conv1D):  # GPT-2's transposed linear layer
            linear_params += module.weight.numel()
            linear_in_out += sum(module.weight.shape)
    config = model.config.get_text_config()
    hidden, heads = config.hidden_size, config.num_attention_heads
    return ModelShape(
        vocab_size=config.vocab_size,
        hidden_size=hidden,
        intermediate_size=getattr(config, "intermediate_size", None)
        or getattr(config, "n_inner", None)
        or 4 * hidden,
        num_layers=config.num_hidden_layers,
        num_heads=heads,
        num_kv_heads=getattr(config, "num_key_value_heads", None) or heads,
        head_dim=getattr(config, "head_dim", None) or hidden // heads,
        tie_word_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
        context_length=context_length(config),
        checkpoint_dtype=str(getattr(config, "dtype", None) or "float32").removeprefix("torch."),
        counted_params=sum(p.numel() for p in model.parameters()),
        counted_linear_params=linear_params,
        counted_linear_in_out=linear_in_out,
        **sliding_attention(config.to_dict()),
    )
