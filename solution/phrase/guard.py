"""What a phrase run does when its fold goes wrong: the collapse guard restarts a fold stuck at the label
prior, and the MiniLM fallback swaps a backbone the clock is too short for.

Why and the measurements behind them: ``docs/decisions/collapse-guard-and-adam-eps.md`` and
``docs/decisions/minilm-fallback.md``.
"""

from __future__ import annotations

import logging

import numpy as np

from solution.phrase.budget import FoldBudget
from solution.phrase.evaluate import pearson
from solution.phrase.fold import FoldState, evaluate_fold
from solution.phrase.prepare import PhraseRun, build_model_inputs, write_run_files

log = logging.getLogger("solution.train")

MIN_STEPS_FOR_EARLY_CHECK = 40  # fewer steps in an epoch give too noisy a loss trend to judge
STALL_DROP = 0.03  # well under a healthy first half-epoch's drop of the loss, well over a collapsed one's


def may_restart(cfg, state: FoldState, epoch: int) -> bool:
    """A fold restarts at most once, only from its first epoch, and only if an epoch is left to use it."""
    return cfg.restart_below > -1 and not state.restarts and epoch == 0 and epoch + 1 < cfg.epochs


def halfway_check_due(cfg, state: FoldState, epoch: int, steps_done: int, epoch_steps: int) -> bool:
    """True at the halfway step of an epoch long enough for :func:`collapsed_early` to judge and that may restart."""
    return (steps_done == epoch_steps // 2 and epoch_steps >= MIN_STEPS_FOR_EARLY_CHECK
            and may_restart(cfg, state, epoch))


def loss_stalled(losses: list[float]) -> bool:
    """True when the mean loss of the later half of ``losses`` is not ``STALL_DROP`` below the first fifth's.

    >>> loss_stalled([0.66] * 50), loss_stalled([0.66] * 25 + [0.60] * 25)
    (True, False)
    """
    first = float(np.mean(losses[: max(1, len(losses) // 5)]))
    return float(np.mean(losses[len(losses) // 2 :])) > first * (1 - STALL_DROP)


def collapsed_early(run: PhraseRun, state: FoldState, losses: list[float]) -> bool:
    """Halfway through the first epoch: has the fold collapsed to the label prior already?

    Both signals must say so: the scoring loss has stalled (:func:`loss_stalled`) and the validation
    Pearson of a sample (:func:`sample_pearson`) is below ``restart_below``. Caught here, a collapse
    costs half an epoch instead of a whole one plus its validation.
    """
    if not loss_stalled(losses):
        return False
    value = sample_pearson(run, state)
    log.info("fold %d: training loss stalled at %.4f halfway through the first epoch; sample validation Pearson %.4f",
             state.fold, float(np.mean(losses[len(losses) // 2 :])), value)
    return not value >= run.cfg.restart_below  # NaN (a constant score) counts as collapsed


def sample_pearson(run: PhraseRun, state: FoldState, batches: int = 4) -> float:
    """Validation Pearson of the fold's first ``batches`` scoring batches: a quick look, not the metric."""
    sample = list(range(min(len(state.val_inputs), batches * run.cfg.eval_batch_size)))
    preds = evaluate_fold(run, state, only=sample)[0]
    scored = ~np.isnan(preds)
    return pearson(preds[scored], np.asarray(run.train.subset(state.val_idx).columns["score"])[scored])


def needs_restart(cfg, state: FoldState, epoch: int, record: dict) -> bool:
    """True when the fold's first epoch collapsed: stopped halfway by :func:`collapsed_early`, or ended
    near chance (validation Pearson below ``restart_below``).

    Full fine-tuning of a base-size backbone sometimes never leaves the label prior, and rounding
    decides it, so such a fold is started again, once, at half of every learning rate (backbone, head,
    fusion): the lost half-epoch costs less than a useless fold. Not on a fold's last epoch (no time left
    to use a restart) nor when the clock stopped it.
    """
    if not may_restart(cfg, state, epoch) or record.get("stopped_by") not in ("epochs", "collapsed"):
        return False
    value = record.get("val_pearson", float("nan"))
    return record["stopped_by"] == "collapsed" or not value >= cfg.restart_below  # NaN counts as collapsed


def logged_restart(cfg, state: FoldState, record: dict) -> list[dict]:
    """The fold's restarts with this one added (its first epoch's record and the lr it restarts at)."""
    next_lr = cfg.lr * 0.5 ** (len(state.restarts) + 1)
    when = "halfway through" if record.get("stopped_by") == "collapsed" else "after"
    log.warning("fold %d: validation Pearson %.4f %s the first epoch: the model collapsed to a near-constant "
                "score; restarting the fold at backbone lr %.1e", state.fold, record.get("val_pearson", float("nan")),
                when, next_lr)
    return [*state.restarts, {**record, "next_lr": next_lr}]


def fallback_due(run: PhraseRun, state: FoldState, budget: FoldBudget, epoch: int, step_s: float) -> bool:
    """True when the clock would train the default backbone for fewer than ``fallback_below_epochs`` epochs a
    fold, where the smaller fallback model scores higher in the same time. Decided once, in fold 0 (every
    fold trains the same model), and recorded as ``model_fallback`` in metrics.json."""
    from solution.distributed import any_true

    if run.fallback is None or state.fold != 0 or state.restarts or epoch != 0:
        return False
    epochs = budget.forecast_epochs(state.step, epoch, step_s)
    if not any_true(epochs < min(run.cfg.fallback_below_epochs, run.cfg.epochs), run.dist, run.device):
        return False
    run.metrics["model_fallback"] = {"from": run.cfg.model, "to": run.fallback.model, "forecast_epochs": round(epochs, 2),
                                     "below_epochs": run.cfg.fallback_below_epochs, "at_s": round(run.clock.elapsed())}
    return True


def switch_to_fallback(run: PhraseRun) -> None:
    """Make ``run`` the fallback's: its config, tokenizer and inputs, and the run folder's files."""
    import shutil

    said = run.metrics["model_fallback"]
    log.warning("fold 0: at this speed the clock would train %s for ~%.1f epochs a fold (under %g), so the run "
                "restarts on %s from %s (the packaged MiniLM scored 0.74 out of fold in 30 minutes on an AVX2-only "
                "CPU where mpnet scored 0.67); --set fallback_config='' keeps the model", said["from"],
                said["forecast_epochs"], said["below_epochs"], said["to"], run.cfg.fallback_config)
    run.cfg, run.fallback = run.fallback, None
    run.metrics.pop("budget_warning", None)  # said of the model left behind
    tokenizer, template = build_model_inputs(run, run.pre.vocab)
    if run.dist.is_main:
        shutil.rmtree(run.run_dir / "tokenizer", ignore_errors=True)  # no file of the old tokenizer may linger
        write_run_files(run, tokenizer, template, run.pre.vocab, resume=False)
        run.save_state()
