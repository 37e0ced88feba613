"""Process set-up that keeps CPU training fast: allocator thresholds, threads, seeds, devices.

glibc's malloc returns freed memory to the OS and re-faults it on every step under torch training,
which slows every step. Raising the mmap and trim thresholds at start-up (the same as
MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=<huge>) stops that churn
(docs/decisions/cpu-step-speed.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import random
import resource

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's maximum for this setting on 64-bit
_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: ~2 GiB of free heap kept before trimming


def tune_malloc() -> bool:
    """Apply the allocator thresholds through ``mallopt``; False where glibc is not the allocator."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    try:
        libc = ctypes.CDLL(libc_name)
        ok = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) == 1
        ok &= libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1
    except (OSError, AttributeError):
        return False
    return bool(ok)


def flush_denormals() -> bool:
    """Treat denormal floats as zero in this process's CPU math; False where the CPU cannot.

    AdamW's first moment of a parameter that gets no gradient (the embedding rows of tokens not in
    the batch: most of the vocabulary) decays by 0.9 a step and turns denormal after ~800 steps;
    x86 then takes a slow path on every such number, which slows the AdamW step over that matrix
    (docs/decisions/cpu-step-speed.md). Values below 1e-38 carry nothing a 1e-4 learning rate can use.
    """
    import torch

    return torch.set_flush_denormal(True)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_states() -> dict:
    """Every random stream a training step draws from (dropout above all), for a checkpoint: a run
    resumed from it continues exactly as if it had never stopped. Only ints, lists and tensors, so
    the checkpoint loads with ``torch.load(weights_only=True)`` (no pickle, no code from the file)."""
    import numpy as np
    import torch

    version, python_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": [version, list(python_state), gauss],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_rng_states(states: dict | None) -> None:
    """Undo :func:`rng_states`; ``None`` (a checkpoint from before they were saved) changes nothing."""
    import numpy as np
    import torch

    if not states:
        return
    version, python_state, gauss = states["python"]
    random.setstate((version, tuple(python_state), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def pick_device(device: str) -> str:
    """"auto" -> cuda where torch sees a GPU, else cpu; "cuda" without one is a :class:`ConfigError`."""
    import torch

    from solution.config import ConfigError

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda was asked for, but torch sees no CUDA device (a CPU-only torch, or no GPU); "
                          "use --device cpu or auto")
    return device


def peak_memory_mb(device: str) -> dict[str, float]:
    """Peak resident memory of this process (and of the GPU when used), in MiB."""
    peak = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.startswith("cuda"):
        import torch

        peak["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return peak

