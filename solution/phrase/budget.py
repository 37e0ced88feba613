"""A phrase fold's wall clock: what training may spend (:class:`FoldBudget`) and what it is told.

The measurements behind these rules: ``docs/decisions/fold-clock.md``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from solution.backbone import DEFAULT_MODEL

log = logging.getLogger("solution.train")


@dataclass
class FoldBudget:
    """A fold's share of the wall clock, less the evaluations it still owes.

    Scoring speed (rows/s) is timed on one validation batch before training (the first training
    steps are too slow and noisy to extrapolate from) and re-measured at every epoch's evaluation.
    Stopping mid-epoch still owes that epoch's validation pass and checkpoint before the final
    scoring, so :meth:`exhausted` keeps their time.

    The schedule anneals towards where training will really stop (:meth:`train_plan`): the last step,
    or the clock's stop, which owes validation passes only for the epochs it reaches, so a run the
    clock cuts short is not left at lr 0.

    >>> budget = FoldBudget(deadline=1000.0, n_val=100, n_eval=400, epochs=4, total_steps=40, eval_rate=10.0)
    >>> budget.reserve_s(epochs_left=1)   # this epoch's validation + the final scoring + saving
    65.0
    >>> budget.train_plan(step=0, epoch=0, step_s=2.0, now=0.0)   # 40 steps of 2 s fit, with 4 validations
    (80.0, 4)
    >>> budget.train_plan(step=0, epoch=0, step_s=100.0, now=0.0)  # the clock stops the first epoch
    (935.0, 1)
    >>> budget.train_plan(step=0, epoch=0, step_s=30.0, now=0.0)  # 3 epochs fit; the 4th would get 5 s: not started
    (900.0, 3)
    """

    deadline: float
    n_val: int
    n_eval: int  # rows scored after the last epoch: the test rows over every sibling order
    epochs: int
    total_steps: int  # epochs x the first epoch's steps (the multi layout's chunk count varies a little)
    eval_rate: float = 1.0
    save_s: float = 15.0  # checkpoints and outputs, whose size grows with the backbone
    n_extra_val: int = 0  # validation rows of the sibling orders after the first: they only sharpen the estimate
    score_extra_val: bool = True  # False once the clock would cut training to score them (see skip_extra_validation)
    # a later epoch's few steps near the schedule's end would not pay for its validation pass
    min_epoch_share: float = 0.25

    @property
    def val_s(self) -> float:
        return self.n_val / self.eval_rate

    @property
    def extra_val_s(self) -> float:
        return self.n_extra_val / self.eval_rate

    def reserve_s(self, epochs_left: int, extra_val: bool | None = None) -> float:
        """Seconds owed after training stops: ``epochs_left`` validation passes, the final scoring (the
        validation's extra sibling orders while ``score_extra_val``), saving."""
        extra_val = self.score_extra_val if extra_val is None else extra_val
        return (epochs_left * self.val_s + self.n_eval / self.eval_rate + self.save_s
                + (self.extra_val_s if extra_val else 0.0))

    def train_plan(self, step: int, epoch: int, step_s: float | None, now: float) -> tuple[float, int]:
        """(seconds of training left, validation passes owed) if the fold runs on at ``step_s`` seconds
        a step (None: not yet timed) until its last step or until :meth:`exhausted` stops it."""
        room = self.deadline - now - self.reserve_s(epochs_left=0)  # what training and validations share
        per_epoch = self.total_steps / self.epochs
        train_s = 0.0
        for passes, e in enumerate(range(epoch, self.epochs)):
            steps = max(0.0, (e + 1) * per_epoch - step) if e == epoch else per_epoch
            need = steps * step_s if step_s else math.inf
            allowed = room - (passes + 1) * self.val_s - train_s  # the clock stops the epoch here
            if need >= allowed:
                if e > epoch and self.too_short(allowed, step_s):
                    return train_s, passes  # the epoch is not started
                return train_s + max(0.0, allowed), passes + 1
            train_s += need
        return train_s, self.epochs - epoch

    def too_short(self, train_s: float, step_s: float) -> bool:
        """True when ``train_s`` seconds hold under ``min_epoch_share`` of an epoch's steps."""
        return train_s < self.min_epoch_share * self.total_steps / self.epochs * step_s

    def starts_epoch(self, step_s: float) -> bool:
        """Whether to start the next epoch now (as :meth:`train_plan` forecast it): False when the clock
        would stop it before ``min_epoch_share`` of its steps."""
        return not self.too_short(self.deadline - time.time() - self.reserve_s(epochs_left=1), step_s)

    def forecast_epochs(self, step: int, epoch: int, step_s: float) -> float:
        """Epochs the fold will have trained when it stops, if it runs on at ``step_s`` seconds a step."""
        train_s, _ = self.train_plan(step, epoch, step_s, time.time())
        return (step + train_s / step_s) * self.epochs / self.total_steps

    def cuts_training(self, step: int, epoch: int, step_s: float) -> bool:
        """True when the clock will stop the fold's training before its last step."""
        return self.train_plan(step, epoch, step_s, time.time())[0] < (self.total_steps - step) * step_s

    def progress(self, step: int, train_s: float, epoch: int) -> float:
        """Share of the fold's training done, by steps or by time, whichever is further: the cosine
        schedule then anneals before the clock stops a run."""
        from solution.scheduler import budget_progress

        time_left = self.train_plan(step, epoch, train_s / step if step else None, time.time())[0]
        return budget_progress(step, self.total_steps, train_s, time_left)

    def exhausted(self) -> bool:
        return time.time() >= self.deadline - self.reserve_s(epochs_left=1)


def plan_fold_start(run: Any, state: Any, budget: FoldBudget) -> None:
    """Before a fold trains: when scoring (a validation pass, the test rows over every sibling order) and
    saving will take more of its clock than training can, the clock will surely cut training, so the
    validation's extra sibling orders give their time to it (as :func:`skip_extra_validation` does once
    steps are timed, which a fold this short may never reach); and say so: a model trained for seconds is
    not worth its submission."""
    from solution.scheduler import record_budget_warning

    train_s, _ = budget.train_plan(state.step, state.start_epoch, None, time.time())
    owed_s = budget.reserve_s(epochs_left=1, extra_val=False)
    if train_s >= owed_s:
        return
    if budget.n_extra_val:
        budget.score_extra_val = False
        train_s, _ = budget.train_plan(state.step, state.start_epoch, None, time.time())
    if run.dist.is_main:
        record_budget_warning(run.metrics, f"fold {state.fold}: scoring and saving take {owed_s:.0f} s of the fold's "
                              f"clock, leaving {max(0.0, train_s):.0f} s to train; raise --budget-minutes, or lower "
                              "--folds or sibling_orders", log)


def skip_extra_validation(run: Any, state: Any, budget: FoldBudget, epoch: int, step_s: float) -> None:
    """When the clock will stop training early, the final validation skips the extra sibling orders and
    their time goes to training; the test rows are still scored over every order, so only the
    out-of-fold estimate loses their averaging."""
    if budget.n_extra_val and budget.score_extra_val and budget.cuts_training(state.step, epoch, step_s):
        budget.score_extra_val = False
        log.info("fold %d: the clock will stop training early, so validation is scored in the first sibling "
                 "order only and its %d other sibling orders' %.0f s go to training", state.fold,
                 run.cfg.sibling_orders - 1, budget.extra_val_s)


def warn_if_budget_short(run: Any, state: Any, budget: FoldBudget, epoch: int, step_s: float) -> None:
    """Say once a run, a few steps into a fold, when the clock will stop its training early, and which
    budget would fit every fold's steps."""
    from solution.scheduler import budget_shortfall, record_budget_warning

    if "budget_warning" in run.metrics:  # said already: skip the arithmetic
        return
    train_s, passes = budget.train_plan(state.step, epoch, step_s, time.time())
    warning = budget_shortfall(step_s, state.step, budget.total_steps - state.step, train_s, run.cfg.budget_minutes,
                               owed_s=(budget.epochs - epoch - passes) * budget.val_s
                               + (0.0 if budget.score_extra_val else budget.extra_val_s),
                               repeats=run.cfg.folds - state.fold)
    if warning:
        warning = f"fold {state.fold}: {warning}"
        clock_stops_first_epoch = epoch == 0 and train_s < (budget.total_steps / budget.epochs - state.step) * step_s
        if clock_stops_first_epoch and run.cfg.model != DEFAULT_MODEL:
            warning += ("; with under one epoch a fold, a smaller model does better in the same time (on an AVX2-only "
                        "CPU --config configs/minilm.toml scored 0.74 out of fold in 30 minutes, the mpnet default 0.67)")
        record_budget_warning(run.metrics, warning, log)
