"""GPU memory of training and inference from a model's shape, by the rules of Transformer Math 101,
and the host memory (RSS) of training on the CPU (estimate_host_training).

Sources: Anthony et al., "Transformer Math 101" (EleutherAI blog, 2023) for bytes per parameter,
optimizer states and activations (after Korthikanti et al. 2022); Dettmers et al., "QLoRA" (2023)
for NF4 with double quantization. Numbers are estimates for sizing jobs, not guarantees: the
allocator's fragmentation and framework buffers add a few percent.

`python -m locallm.model.memory` prints a table for LLaMA-2 7B/13B/70B x full/LoRA/QLoRA.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from locallm.model.shape import LLAMA, ModelShape, read_model_config, shape_from_config

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


def nf4_bytes(shape: ModelShape, double_quant: bool = True) -> float:
    """Bytes of the linear layers' weights in NF4, with their quantization constants."""
    overhead = NF4_DOUBLE_QUANT_OVERHEAD if double_quant else NF4_SINGLE_QUANT_OVERHEAD
    return shape.linear_params * (BYTES_PER_PARAM["nf4"] + overhead)


def weight_bytes(shape: ModelShape, method: str, double_quant: bool = True) -> float:
    """Bytes of the model's weights on the GPU for a training or inference method.

    full and LoRA: bf16. QLoRA: the layers' linear weights in NF4; embeddings, LM head and norms
    stay unquantized and peft's prepare_model_for_kbit_training casts them to fp32.
    """
    if method in ("full", "lora"):
        return shape.params * BYTES_PER_PARAM["bf16"]
    if method == "qlora":
        return nf4_bytes(shape, double_quant) + shape.unquantized_params * BYTES_PER_PARAM["fp32"]
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
    """GPU memory of batched inference: weights, the KV cache (bf16; a sliding-window layer keeps
    only its window) and the last logits."""
    kv_cache = 2 * batch_size * shape.kv_tokens(seq_len) * shape.num_kv_heads * shape.head_dim
    return Estimate(
        params=shape.params,
        trained_params=0,
        weights=weight_bytes(shape, method),
        trained_states=0.0,
        activations=kv_cache * BYTES_PER_PARAM["bf16"],
        logits=seq_len * batch_size * shape.vocab_size * BYTES_PER_PARAM["fp32"],
        overhead=overhead_gb * GB,
    )


# Host memory of training on the CPU, where the workflow trains in float32 (models.compute_dtype).
# Measured as its own quantity, not fitted: RSS of an SFT job before it loads the model (torch 2.13,
# transformers 5.24, peft, trl, datasets, bitsandbytes imported; tokenizer and data read):
# 550 MB with builtin:tiny, 600 MB with SmolLM2 (performance/smollm2_memory.py, column imports_mb).
HOST_LIBRARIES_BYTES = 0.6 * GB
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# TRL's SFT and DPO losses project onto the vocabulary in tiles of at most 4,096 tokens x 32,768
# entries (trl.kernels.chunked_logprob), never the whole logits. Its CPU path, measured alone
# (49,152-token vocabulary, 256 and 1,024 tokens), holds 8.4-8.6 tiles at its peak: the tile, its
# scaled copy, log-probabilities, probabilities, the gradient, temporaries and a boolean mask.
HEAD_TILE_TOKENS = 4096
HEAD_TILE_VOCAB = 32768
HEAD_TILES = 8.5


@dataclass(frozen=True)
class HostEstimate:
    """Peak host memory (RSS) of one CPU training process, in bytes, by component.

    The process peaks either while it loads the model (the checkpoint's pages beside the weights
    built from them) or in a training step; `total` is the larger of the two above the libraries.
    """

    libraries: float
    checkpoint: float
    weights: float
    trained_states: float
    gradients: float
    activations: float
    logits: float

    @property
    def load(self) -> float:
        """Loading: the checkpoint's pages (memory-mapped, read whole) and the weights built."""
        return self.checkpoint + self.weights

    @property
    def step(self) -> float:
        """A step: the mapped checkpoint and weights, optimizer states, and the larger of what the
        backward pass starts with (activations, logits) and ends with (gradients)."""
        return self.load + self.trained_states + max(self.activations + self.logits, self.gradients)

    @property
    def peak_phase(self) -> str:
        return "load" if self.load >= self.step else "step"

    @property
    def total(self) -> float:
        return self.libraries + max(self.load, self.step)

    def terms(self) -> dict[str, float]:
        """The components by name, for tables."""
        return {
            "libraries": self.libraries,
            "checkpoint": self.checkpoint,
            "weights": self.weights,
            "states": self.trained_states,
            "gradients": self.gradients,
            "activations": self.activations,
            "logits": self.logits,
        }


def layer_saved_elements(shape: ModelShape, method: str, lora_r: int, lora_dropout: bool) -> int:
    """Elements per token that one decoder layer keeps for the backward pass (autograd's saved
    tensors with SDPA's flash kernel, read from the graph of a Llama layer; adapters all-linear).

    Every layer keeps its two RMSNorms' inputs, SDPA's query, key, value, output and log-sum-exp,
    and the MLP's gate, activation and up projections. A frozen linear layer keeps nothing; a
    trained one keeps its input (shared by q/k/v and by gate/up). LoRA's dropout keeps a mask and
    a dropped copy of the input for each adapter.
    """
    h, i = shape.hidden_size, shape.intermediate_size
    q, kv = shape.num_heads * shape.head_dim, shape.num_kv_heads * shape.head_dim
    # The two norms' inputs and 1/rms, SDPA's tensors, the MLP's gate, activation and up.
    kept = 2 * (h + 1) + (2 * q + 2 * kv + shape.num_heads) + 3 * i
    # The inputs of the four groups of linear layers: q/k/v, o (SDPA's output, already kept),
    # gate/up, down.
    inputs = h + h + i
    if method == "full":
        # Also the normalized tensors before each RMSNorm's (trained) weight.
        return kept + inputs + 2 * h
    adapters = 7 * lora_r
    if lora_dropout:
        return kept + adapters + 2 * (3 * h + q + 2 * h + i)
    return kept + adapters + inputs


def estimate_host_training(
    shape: ModelShape,
    method: str,
    *,
    seq_len: int,
    batch_size: int,
    lora_r: int = 8,
    lora_dropout: bool = True,
    gradient_checkpointing: bool = False,
    compute_dtype: str = "float32",
) -> HostEstimate:
    """Peak RSS of one training process on the CPU (per process when several train on one host)."""
    compute = DTYPE_BYTES[compute_dtype]
    tokens = seq_len * batch_size
    per_layer = layer_saved_elements(shape, method, lora_r, lora_dropout) * compute
    if gradient_checkpointing:
        # Each layer's input, and one layer recomputed at a time.
        activations = tokens * (shape.num_layers * shape.hidden_size * compute + per_layer)
    else:
        activations = tokens * shape.num_layers * per_layer
    # The file is memory-mapped while loading, and stays mapped: a parameter stored in the dtype it
    # is used in is the file's page itself (copied on write), so it takes no memory of its own.
    stored = DTYPE_BYTES.get(shape.checkpoint_dtype, 4)
    checkpoint = shape.params * stored
    if method == "qlora":
        weights = nf4_bytes(shape) + (
            0 if stored == compute else shape.unquantized_params * compute
        )
    else:
        weights = 0.0 if stored == compute else shape.params * compute
    trained = shape.params if method == "full" else shape.lora_params(lora_r)
    return HostEstimate(
        libraries=HOST_LIBRARIES_BYTES,
        checkpoint=checkpoint,
        weights=weights,
        # AdamW's two moments (and LoRA's weights, which the checkpoint does not hold).
        trained_states=trained * (8 if method == "full" else 12),
        gradients=trained * 4,
        activations=activations,
        logits=HEAD_TILES
        * min(tokens, HEAD_TILE_TOKENS)
        * min(shape.vocab_size, HEAD_TILE_VOCAB)
        * compute,
    )


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
    parser = argparse.ArgumentParser(
        prog="python -m locallm.model.memory", description=main.__doc__
    )
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
