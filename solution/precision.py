"""Mixed precision: bf16 autocast on CPUs and GPUs that support it, fp16 + loss scaling otherwise."""

from __future__ import annotations

import contextlib

import torch


def resolve_precision(precision: str, device: str) -> str:
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16"


def autocast(precision: str, device: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=dtype)


def grad_scaler(precision: str, device: str):
    """A GradScaler for fp16 on CUDA (bf16 has fp32's range and needs none)."""
    enabled = precision == "fp16" and device.startswith("cuda")
    return torch.amp.GradScaler("cuda", enabled=enabled)
