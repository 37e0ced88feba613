"""Cosine learning-rate schedule with linear warm-up, driven by *progress* in [0, 1].

Progress is the larger of the step fraction and the wall-clock fraction of the training budget, so
a run that the clock will stop early still anneals to a low learning rate before it stops.
"""

from __future__ import annotations

import math


def cosine_factor(progress: float, warmup: float, floor: float = 0.0) -> float:
    progress = min(max(progress, 0.0), 1.0)
    if warmup > 0 and progress < warmup:
        return progress / warmup
    decay = (progress - warmup) / max(1e-8, 1.0 - warmup)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * decay))


def set_lr(optimizer, factor: float) -> float:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
    return factor


def budget_progress(step: int, total_steps: int, used_s: float, left_s: float) -> float:
    """Training progress for the schedule: the step fraction or the time fraction, whichever is further.

    >>> budget_progress(step=10, total_steps=100, used_s=60, left_s=60)   # the clock is further along
    0.5
    """
    return max(step / max(1, total_steps), used_s / max(1e-6, used_s + max(left_s, 0.0)))
