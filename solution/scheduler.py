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


def budget_shortfall(step_s: float, steps_done: int, steps_left: int, train_left_s: float,
                     budget_minutes: float) -> str | None:
    """A warning when the clock will stop training before its last step, at ``step_s`` seconds per step;
    None when the steps fit. It names the budget that would fit them (the schedule anneals within the
    given one either way, so this is advice, not an error).

    >>> budget_shortfall(11.0, 6, 136, 480.0, 10)   # an AVX2-only CPU on the retrieval preset
    'at 5.5 steps/min the clock stops training at step ~49 of 142; --budget-minutes 27 would fit them all'
    >>> budget_shortfall(2.7, 6, 136, 480.0, 10) is None
    True
    """
    need_s = steps_left * step_s
    if need_s <= train_left_s:
        return None
    fits = steps_done + int(train_left_s / step_s)
    minutes = math.ceil(budget_minutes + (need_s - train_left_s) / 60)
    return (f"at {60 / step_s:.1f} steps/min the clock stops training at step ~{fits} of {steps_done + steps_left}; "
            f"--budget-minutes {minutes} would fit them all")
