"""The machine a job runs on, as run records and environment.json describe it: CPU model, its
vector instruction sets (which decide the kernels, and so the last bits of results) and memory."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo; platform.processor() is empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The CPU's vector instruction sets that decide which kernels torch and bitsandbytes run, and so
# the last bits of float results (docs/reproduce.md): the same config gave different predictions
# on an AVX2-only CPU than on one with AVX-512-BF16.
VECTOR_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
    "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
)  # fmt: skip


def cpu_flags() -> list[str]:
    """VECTOR_FLAGS this CPU has, from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            have = set(line.split(":", 1)[1].split())
            return [flag for flag in VECTOR_FLAGS if flag in have]
    return []


def memory_gb() -> float | None:
    """Physical memory of the machine in GiB."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None
