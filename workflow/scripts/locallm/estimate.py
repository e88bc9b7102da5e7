"""GPU memory of training and inference from a model's shape, by the rules of Transformer Math 101.

Sources: Anthony et al., "Transformer Math 101" (EleutherAI blog, 2023) for bytes per parameter,
optimizer states and activations (after Korthikanti et al. 2022); Dettmers et al., "QLoRA" (2023)
for NF4 with double quantization. Numbers are estimates for sizing jobs, not guarantees: the
allocator's fragmentation and framework buffers add a few percent.

`python -m locallm.estimate` prints a table for LLaMA-2 7B/13B/70B x full/LoRA/QLoRA.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GB = 1e9
MB = 1e6

# Bytes per stored parameter by dtype.
BYTES_PER_PARAM = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "int8": 1.0, "nf4": 0.5}
# NF4 keeps one absmax per 64 weights; double quantization stores it in 8 bits with one fp32
# constant per 256 blocks (QLoRA, section 3): 8/64 + 32/(64*256) bits per weight.
NF4_DOUBLE_QUANT_OVERHEAD = (8 / 64 + 32 / (64 * 256)) / 8
NF4_SINGLE_QUANT_OVERHEAD = (32 / 64) / 8
# Full fine-tuning with mixed precision (Transformer Math 101): bf16 weights 2 + bf16 gradients 2 +
# AdamW's fp32 master copy, momentum and variance 12 = 16 bytes; 18 when gradients are kept in fp32.
FULL_MIXED_BYTES = 16.0
FULL_MIXED_FP32_GRAD_BYTES = 18.0
# A trained LoRA parameter (PEFT keeps adapters in fp32): weight 4 + gradient 4 + AdamW moments 8.
ADAPTER_TRAINED_BYTES = 16.0
# 16-bit activations per token, per hidden unit and layer (Korthikanti et al. 2022, eq. 1):
# s*b*h*L*(34 + 5*a*s/h) bytes without recomputation; 2*s*b*h*L with full recomputation (only each
# layer's input is kept).
ACTIVATION_BYTES = 34
ATTENTION_SCORE_BYTES = 5
RECOMPUTE_BYTES = 2
METHODS = ("full", "lora", "qlora")


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
            context_length=config.get("max_position_embeddings"),
        )
    except KeyError as missing:
        raise ValueError(
            f"config.json has no {missing} field: not a LLaMA-style decoder; "
            "use shape_from_meta() for other architectures"
        ) from None
    return shape


def shape_from_tiny(tiny: dict[str, Any]) -> ModelShape:
    """The shape of `builtin:tiny` from the config's model.tiny section (before it is built)."""
    return ModelShape(
        vocab_size=tiny["vocab_size"],
        hidden_size=tiny["hidden_size"],
        intermediate_size=tiny["intermediate_size"],
        num_layers=tiny["num_layers"],
        num_heads=tiny["num_heads"],
        num_kv_heads=tiny["num_heads"],
        head_dim=tiny["hidden_size"] // tiny["num_heads"],
        tie_word_embeddings=True,
        context_length=tiny["context_length"],
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


def count_params_empty(model_dir: str | Path, trust_remote_code: bool = False) -> int:
    """Parameter count of any architecture: the model built on the meta device (no memory)."""
    return sum(p.numel() for p in empty_model(model_dir, trust_remote_code).parameters())


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
        context_length=getattr(config, "max_position_embeddings", None),
        counted_params=sum(p.numel() for p in model.parameters()),
        counted_linear_params=linear_params,
        counted_linear_in_out=linear_in_out,
    )


@dataclass(frozen=True)
class Estimate:
    """GPU memory of one training (or inference) process, in bytes, by component."""

    params: int
    trained_params: int
    weights: float
    trained_states: float
    activations: float
    logits: float
    overhead: float

    @property
    def total(self) -> float:
        return self.weights + self.trained_states + self.activations + self.logits + self.overhead

    @property
    def before_activations(self) -> float:
        """Weights plus gradients and optimizer states: the Transformer Math 101 headline figure."""
        return self.weights + self.trained_states


def weight_bytes(shape: ModelShape, method: str, double_quant: bool = True) -> float:
    """Bytes of the model's weights on the GPU for a training or inference method.

    full and LoRA: bf16. QLoRA: the layers' linear weights in NF4; embeddings, LM head and norms
    stay unquantized and peft's prepare_model_for_kbit_training casts them to fp32.
    """
    if method in ("full", "lora"):
        return shape.params * BYTES_PER_PARAM["bf16"]
    if method == "qlora":
        nf4 = BYTES_PER_PARAM["nf4"] + (
            NF4_DOUBLE_QUANT_OVERHEAD if double_quant else NF4_SINGLE_QUANT_OVERHEAD
        )
        return shape.linear_params * nf4 + shape.unquantized_params * BYTES_PER_PARAM["fp32"]
    raise ValueError(f"method {method!r}: allowed values are {', '.join(METHODS)}")


def activation_bytes(
    shape: ModelShape, seq_len: int, batch_size: int, gradient_checkpointing: bool
) -> float:
    """Activations kept for the backward pass (16-bit), with or without full recomputation."""
    s, b, h, n_layers = seq_len, batch_size, shape.hidden_size, shape.num_layers
    if gradient_checkpointing:
        return RECOMPUTE_BYTES * s * b * h * n_layers
    per_token = ACTIVATION_BYTES + ATTENTION_SCORE_BYTES * shape.num_heads * s / h
    return s * b * h * n_layers * per_token


def estimate_training(
    shape: ModelShape,
    method: str,
    *,
    seq_len: int,
    batch_size: int,
    lora_r: int = 8,
    gradient_checkpointing: bool = True,
    overhead_gb: float = 1.0,
) -> Estimate:
    """GPU memory of one training process (one GPU; DDP puts one such process on each GPU)."""
    if method == "full":
        trained = shape.params
        # FULL_MIXED_BYTES includes the bf16 weights counted in `weights`.
        states = trained * (FULL_MIXED_BYTES - BYTES_PER_PARAM["bf16"])
    else:
        trained = shape.lora_params(lora_r)
        states = trained * ADAPTER_TRAINED_BYTES
    return Estimate(
        params=shape.params,
        trained_params=trained,
        weights=weight_bytes(shape, method),
        trained_states=states,
        activations=activation_bytes(shape, seq_len, batch_size, gradient_checkpointing),
        # fp32 logits over the vocabulary and their gradient, for the loss.
        logits=2 * seq_len * batch_size * shape.vocab_size * BYTES_PER_PARAM["fp32"],
        overhead=overhead_gb * GB,
    )


def estimate_inference(
    shape: ModelShape, method: str, *, seq_len: int, batch_size: int, overhead_gb: float = 1.0
) -> Estimate:
    """GPU memory of batched inference: weights, the KV cache (bf16) and the last logits."""
    kv_cache = 2 * shape.num_layers * batch_size * seq_len * shape.num_kv_heads * shape.head_dim
    return Estimate(
        params=shape.params,
        trained_params=0,
        weights=weight_bytes(shape, method),
        trained_states=0.0,
        activations=kv_cache * BYTES_PER_PARAM["bf16"],
        logits=seq_len * batch_size * shape.vocab_size * BYTES_PER_PARAM["fp32"],
        overhead=overhead_gb * GB,
    )


def variant_shape(settings: dict[str, Any], base_dir: str | Path | None, tiny: dict) -> ModelShape:
    """The shape of a variant's base: model.tiny for builtin:tiny, else its config.json."""
    if settings["base"] == "builtin:tiny":
        return shape_from_tiny(tiny)
    if base_dir is None or not (Path(base_dir) / "config.json").exists():
        raise FileNotFoundError(
            f"base {settings['base']!r}: no config.json found locally"
            + (f" (looked in {Path(base_dir).resolve()})" if base_dir else "")
            + "; run the fetch_base rule on the login node first"
        )
    return shape_from_config(read_model_config(base_dir))


def gpu_resources(
    settings: dict[str, Any],
    shape: ModelShape,
    hpc: dict[str, Any],
    *,
    stage: str = "train",
    batch_size: int | None = None,
) -> dict[str, int]:
    """Snakemake resources of a GPU job: `gpu` count, `mem_mb` (host RAM), `gpu_mem_mb` estimate.

    One process per GPU (DDP), each holding a full copy, so the count is training.num_processes.
    Host RAM is at least settings["mem_mb"] and at least the bf16 checkpoint, which passes through
    it while loading.
    """
    kwargs = {
        "seq_len": settings["max_length"],
        "batch_size": batch_size or settings["per_device_batch_size"],
        "overhead_gb": hpc["cuda_overhead_gb"],
    }
    if stage == "train":
        estimate = estimate_training(
            shape,
            settings["method"],
            lora_r=settings["lora_r"],
            gradient_checkpointing=settings["gradient_checkpointing"],
            **kwargs,
        )
        gpus = settings["num_processes"]
    else:
        estimate = estimate_inference(shape, settings["method"], **kwargs)
        gpus = 1
    load_mb = math.ceil(shape.params * BYTES_PER_PARAM["bf16"] * 1.1 / MB)
    return {
        "gpu": gpus,
        "mem_mb": gpus * max(settings["mem_mb"], load_mb),
        "gpu_mem_mb": math.ceil(estimate.total / MB),
    }


def table(
    shapes: dict[str, ModelShape],
    *,
    seq_len: int,
    batch_size: int,
    lora_r: int,
    gradient_checkpointing: bool,
) -> list[dict[str, Any]]:
    """One row per model x method: parameters, trained parameters, memory by component (GB)."""
    rows = []
    for name, shape in shapes.items():
        for method in METHODS:
            e = estimate_training(
                shape,
                method,
                seq_len=seq_len,
                batch_size=batch_size,
                lora_r=lora_r,
                gradient_checkpointing=gradient_checkpointing,
            )
            rows.append(
                {
                    "model": name,
                    "method": method,
                    "params_B": round(e.params / 1e9, 2),
                    "trained_M": round(e.trained_params / 1e6, 1),
                    "weights_GB": round(e.weights / GB, 1),
                    "grads_optim_GB": round(e.trained_states / GB, 1),
                    "activations_GB": round((e.activations + e.logits) / GB, 1),
                    "total_GB": round(e.total / GB, 1),
                }
            )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """Rows as an aligned plain-text table."""
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.rjust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r[c]).rjust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Print the estimate table for LLaMA-2 7B/13B/70B (and 65B) x full/LoRA/QLoRA."""
    parser = argparse.ArgumentParser(prog="python -m locallm.estimate", description=main.__doc__)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument(
        "--no-gradient-checkpointing", action="store_true", help="keep all activations"
    )
    parser.add_argument("--model", help="a local model folder (config.json) instead of LLaMA-2")
    args = parser.parse_args(argv)
    shapes = (
        {Path(args.model).name: shape_from_config(read_model_config(args.model))}
        if args.model
        else {k: LLAMA[k] for k in ("7B", "13B", "70B")}
    )
    rows = table(
        shapes,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        lora_r=args.lora_r,
        gradient_checkpointing=not args.no_gradient_checkpointing,
    )
    print(
        f"GPU memory per process, seq_len {args.seq_len}, batch {args.batch_size}, "
        f"LoRA r {args.lora_r} (all-linear), gradient checkpointing "
        f"{'off' if args.no_gradient_checkpointing else 'on'}, 1 GB CUDA overhead"
    )
    print(format_table(rows))


if __name__ == "__main__":
    main()
