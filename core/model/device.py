"""Where the model runs and in which precision: `auto` resolved by what this machine has."""

from __future__ import annotations

from pathlib import Path


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(requested: str) -> str:
    """Turn `auto` into cuda, mps or cpu, by what this machine has."""
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_precision(requested: str, device: str) -> str:
    """Turn `auto` into fp16 on CUDA, bf16 on a CPU with bf16 instructions, else fp32."""
    if requested != "auto":
        return requested
    if device == "cuda":
        return "fp16"
    if device == "cpu" and cpu_supports_bf16():
        return "bf16"
    return "fp32"
