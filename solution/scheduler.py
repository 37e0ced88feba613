"""Cosine learning-rate schedule with linear warm-up, driven by *progress* in [0, 1].

Progress is the larger of the step fraction and the wall-clock fraction of the training budget, so
a run that the clock will stop early still anneals to a low learning rate before it stops.
"""

from __future__ import annotations

import math
import time


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


def budget_shortfall(step_s: float, steps_done: int, steps_left: int, train_left_s: float, budget_minutes: float,
                     owed_s: float = 0.0, repeats: int = 1) -> str | None:
    """A warning when the clock will stop training before its last step, at ``step_s`` seconds per step;
    None when the steps fit. ``train_left_s`` is the training the clock still allows; ``owed_s`` what
    running every step would cost besides (validation passes of epochs the clock never reaches);
    ``repeats`` how many equal shares of the clock fall short alike (folds). It names the budget that
    would fit every step (the schedule anneals within the given one either way, so this is advice).

    >>> budget_shortfall(11.0, 6, 136, 480.0, 10)   # a slow CPU on the retrieval preset
    'at 5.5 steps/min the clock stops training at step ~49 of 142; --budget-minutes 27 would fit them all'
    >>> budget_shortfall(2.7, 6, 136, 480.0, 10) is None
    True
    """
    need_s = steps_left * step_s
    if need_s <= train_left_s:
        return None
    fits = steps_done + int(train_left_s / step_s)
    minutes = math.ceil(budget_minutes + repeats * (need_s + owed_s - train_left_s) / 60)
    return (f"at {60 / step_s:.1f} steps/min the clock stops training at step ~{fits} of {steps_done + steps_left}; "
            f"--budget-minutes {minutes} would fit them all")


def record_budget_warning(metrics: dict, warning: str, logger) -> None:
    """Log ``warning`` and keep it as ``metrics["budget_warning"]``, once a run: the first one said stays."""
    if "budget_warning" not in metrics:
        logger.warning(warning)
        metrics["budget_warning"] = warning


class StepTimer:
    """Seconds per unit of work (a step, or a batch's padded tokens where step lengths vary), timed over
    the ``FORECAST_STEPS`` steps after the first (a warm-up: allocations, kernel choice) and given once,
    so a loop can say early whether its budget fits.

    >>> timer = StepTimer()
    >>> [timer.lap(count, now=float(count)) for count in range(1, 8)]   # one second a step
    [None, None, None, None, None, 1.0, None]
    >>> timer = StepTimer()   # steps of 100 and 300 tokens, at 0.01 s a token
    >>> [timer.lap(n, work=w, now=t) for n, w, t in [(1, 100, 1), (2, 300, 4), (3, 100, 5), (4, 300, 8),
    ...                                              (5, 100, 9), (6, 300, 12)]][-1]
    0.01
    """

    FORECAST_STEPS = 5

    def __init__(self) -> None:
        self.first_step_end: float | None = None
        self.work = 0.0

    def lap(self, count: int, work: float = 1.0, now: float | None = None) -> float | None:
        """Call after each step (``count`` steps done so far, ``work`` done by this one); the seconds per
        unit of work once enough steps are timed."""
        now = time.time() if now is None else now
        if count == 1:
            self.first_step_end = now
        elif self.first_step_end is not None and count <= self.FORECAST_STEPS + 1:
            self.work += work
            if count == self.FORECAST_STEPS + 1:
                return (now - self.first_step_end) / self.work
        return None
