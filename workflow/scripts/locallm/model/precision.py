"""Where a job computes and in which dtype: a CUDA GPU or the CPU, bf16 or float32."""

from __future__ import annotations

from typing import TYPE_CHECKING

# torch is imported where it is used: Snakemake imports this module's users while it plans.
if TYPE_CHECKING:
    import torch


def on_gpu() -> bool:
    """True when this process trains and infers on a CUDA GPU."""
    import torch

    return torch.cuda.is_available()


def compute_dtype() -> torch.dtype:
    """bf16 on a GPU that supports it, fp32 on the CPU (CPU bf16 matmuls are slow and lossy)."""
    import torch

    if on_gpu() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def inference_dtype(precision: str) -> torch.dtype:
    """The dtype inference loads weights in: config inference.precision; `auto` is what training
    computes in (compute_dtype(): bf16 on a bf16 GPU, float32 on the CPU). bf16 on a CPU with bf16
    instructions is faster (1.4-1.7x on SmolLM2) but changed a QLoRA SFT stage's labels: macro-F1
    0.84 -> 0.66 on config/smollm2.yaml (docs/performance.md), so there it is asked for.
    """
    import torch

    if precision == "auto":
        return compute_dtype()
    if precision in ("float32", "bfloat16"):
        return getattr(torch, precision)
    raise ValueError(
        f"config inference.precision {precision!r}: allowed values are auto, float32, bfloat16"
    )
