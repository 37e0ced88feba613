"""Mixed precision chosen by capability: bf16 autocast where it is fast, fp16 + loss scaling on older GPUs.

On CPUs bf16 speed depends on the chip: with native bf16 instructions bf16 autocast trains faster
than fp32; without them torch emulates it and it runs *slower*. Flags alone do not tell what torch's
kernels do with them, so ``auto`` on CPU times a short forward+backward of a transformer-sized linear
layer in both precisions at start-up and keeps the faster (docs/decisions/precision-probe.md).

Example:
    >>> choose_cpu_precision(timer=lambda bf16: 2.0 if bf16 else 1.0)   # emulated bf16: twice as slow
    ('fp32', {'fp32_ms': 1000.0, 'bf16_ms': 2000.0})
    >>> choose_cpu_precision(timer=lambda bf16: 0.5 if bf16 else 1.0)[0]
    'bf16'
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

BF16_MIN_SPEEDUP = 1.1  # bf16 must beat fp32 by this much: it also costs a little accuracy


def time_linear_step(bf16: bool, repeats: int = 5) -> float:
    """Median seconds of forward+backward through a 384 -> 1536 linear layer on 256 tokens."""
    generator = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(384, 1536)
    x = torch.randn(256, 384, generator=generator, requires_grad=True)
    times = []
    for _ in range(repeats + 1):  # the first call pays for kernel selection
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = layer(x).float().sum()
        out.backward()
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[repeats // 2]


def choose_cpu_precision(timer: Callable[[bool], float] = time_linear_step) -> tuple[str, dict[str, float]]:
    """("bf16" or "fp32", the timings in ms) by timing both on this CPU; ``timer(bf16)`` is injectable."""
    fp32, bf16 = timer(False), timer(True)
    choice = "bf16" if fp32 >= BF16_MIN_SPEEDUP * bf16 else "fp32"
    return choice, {"fp32_ms": round(fp32 * 1000, 3), "bf16_ms": round(bf16 * 1000, 3)}


def resolve_precision(precision: str, device: str, timer: Callable[[bool], float] = time_linear_step) -> str:
    """The precision to train or predict in: ``precision`` unless it is "auto"."""
    return resolve_precision_with_probe(precision, device, timer)[0]


def resolve_precision_with_probe(precision: str, device: str,
                                 timer: Callable[[bool], float] = time_linear_step) -> tuple[str, dict]:
    """(precision, how it was chosen) for metrics.json; "auto" on CPU times bf16 against fp32."""
    if precision != "auto":
        return precision, {"chosen_by": "config"}
    if device.startswith("cuda"):
        return ("bf16" if torch.cuda.is_bf16_supported() else "fp16"), {"chosen_by": "cuda capability"}
    choice, timings = choose_cpu_precision(timer)
    log.info("precision auto on this CPU: %s (linear step fp32 %.2f ms, bf16 %.2f ms)", choice,
             timings["fp32_ms"], timings["bf16_ms"])
    return choice, {"chosen_by": "cpu timing", **timings}


def autocast(precision: str, device: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=dtype)


def grad_scaler(precision: str, device: str):
    """A GradScaler for fp16 on CUDA (bf16 has fp32's range and needs none)."""
    enabled = precision == "fp16" and device.startswith("cuda")
    return torch.amp.GradScaler("cuda", enabled=enabled)
