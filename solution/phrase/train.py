"""Train the phrase matcher and write a Kaggle submission: ``python -m solution.train --help``.

    python -m solution.train                                   # mpnet (MiniLM on CPUs too slow for it), CPU budget
    python -m solution.train --config configs/gpu.toml --model microsoft/deberta-v3-large --folds 5
    torchrun --nproc_per_node 4 -m solution.train --config configs/gpu.toml --out runs/big

Stops at ``--epochs`` or ``--budget-minutes``, whichever comes first; on the clock it finishes the
step, evaluates and still writes the whole submission. Each epoch is checkpointed and ``--resume``
continues an interrupted run. ``python -m solution.train embedder ...`` trains retrieval embedders.

In open_clip's shape: :func:`solution.phrase.prepare.prepare` builds what every fold shares
(``PhraseRun``), :func:`solution.phrase.fold.setup_fold` the model, optimizer and resumed state
(``FoldState``), :func:`solution.phrase.step.train_step` one optimizer step; ``solution.phrase.budget``
holds the wall-clock arithmetic, ``solution.phrase.guard`` the collapse restart and the MiniLM
fallback. Here, top to bottom: :func:`run` ties the folds together and writes the outputs,
:func:`train_fold` runs a fold's epochs, :func:`train_one_epoch` its steps.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from solution.phrase.budget import FoldBudget, plan_fold_start, skip_extra_validation, warn_if_budget_short
from solution.phrase.evaluate import pearson, predict_orders
from solution.phrase.fold import FoldState, epoch_inputs, evaluate_fold, setup_fold
from solution.phrase.guard import (
    collapsed_early,
    fallback_due,
    halfway_check_due,
    logged_restart,
    needs_restart,
    switch_to_fallback,
)
from solution.phrase.prepare import PhraseRun, prepare, write_oof
from solution.phrase.step import StepResult, contrastive_summary, train_step
from solution.run_folder import add_common_options, atomic_json, atomic_torch_save, run_from_cli

log = logging.getLogger("solution.train")

FoldResult = tuple[np.ndarray, np.ndarray, dict]  # validation predictions, test predictions, fold metrics


def run(cfg, resume: bool = False) -> dict:
    """Train every fold of ``cfg`` and write the run folder and the submission; returns the metrics."""
    from solution.distributed import barrier, cleanup

    phrase_run, finished = prepare(cfg, resume)
    if finished is not None:
        return finished
    run_, dist = phrase_run, phrase_run.dist
    run_.save_state()
    barrier(dist)
    oof = np.full(len(run_.train), np.nan, dtype=np.float32)
    test_preds = []
    for fold in range(cfg.folds):
        fold_dir = run_.run_dir / f"fold{fold}"
        if (fold_dir / "done.json").exists():
            done = np.load(fold_dir / "predictions.npz")
            oof[run_.folds == fold], test_preds = done["val"], test_preds + [done["test"]]
            run_.metrics["folds"][str(fold)] = json.loads((fold_dir / "done.json").read_text())
            continue
        deadline = time.time() + run_.clock.left() / (cfg.folds - fold)
        val_pred, test_pred, fold_metrics = train_fold_or_fall_back(run_, fold, deadline, resume)
        oof[run_.folds == fold] = val_pred
        test_preds.append(test_pred)
        run_.metrics["folds"][str(fold)] = fold_metrics
        if dist.is_main:
            np.savez(fold_dir / "predictions.npz", val=val_pred, test=test_pred)
            atomic_json(fold_dir / "done.json", fold_metrics)
            # a finished fold is never resumed, so its optimizer state (twice the trained weights) goes
            (fold_dir / "checkpoint.pt").unlink(missing_ok=True)
        run_.save_state()
    if dist.is_main:
        finish_run(run_, oof, test_preds)
    barrier(dist)
    cleanup(dist)
    return run_.metrics


def train_fold_or_fall_back(run: PhraseRun, fold: int, deadline: float, resume: bool) -> FoldResult:
    """Train the fold; when it asks for the fallback, switch the run to it and train the fold again from
    scratch by the same deadline (the switch clears ``run.fallback``, so it happens at most once)."""
    while (result := train_fold(run, fold, deadline, resume)) is None:
        switch_to_fallback(run)
        resume = False
    return result


def train_fold(run: PhraseRun, fold: int, deadline: float, resume: bool) -> FoldResult | None:
    """Train one fold by ``deadline``; None when fold 0 finds the clock too short for its backbone and the
    run should switch to the fallback (:func:`run` does, then trains the fold again)."""
    from solution.distributed import any_true, barrier

    cfg, dist = run.cfg, run.dist
    state = setup_fold(run, fold, resume)
    (run.run_dir / state.dir).mkdir(parents=True, exist_ok=True)
    budget = fold_budget(run, state, deadline)
    plan_fold_start(run, state, budget)
    stopped_by, epoch = "epochs", state.start_epoch
    while epoch < cfg.epochs:
        if not epoch_fits(run, state, budget, epoch):
            stopped_by = "budget"
            break
        record, stopped_by = train_one_epoch(run, state, epoch, budget)
        if stopped_by == "fallback":
            return None  # returning frees the model and its optimizer before the fallback's are built
        if dist.is_main:
            score_epoch(run, state, budget, record, stopped_by)
        if any_true(dist.is_main and needs_restart(cfg, state, epoch, record), dist, run.device):
            restarts = logged_restart(cfg, state, record)
            state = None  # frees the collapsed model and its optimizer before the fresh ones are built
            state = setup_fold(run, fold, resume=False, lr_scale=restarts[-1]["next_lr"] / cfg.lr)
            state.restarts, epoch = restarts, 0
            continue
        if dist.is_main:
            save_epoch(run, state, record)
        barrier(dist)
        if stopped_by == "budget":
            break
        epoch += 1
    return finish_fold(run, state, budget, stopped_by)


def fold_budget(run: PhraseRun, state: FoldState, deadline: float) -> FoldBudget:
    """The fold's budget until ``deadline``, with its scoring speed timed on one validation batch."""
    cfg = run.cfg
    steps_per_epoch = len(epoch_inputs(run, state, 0)[1])  # this process's share
    orders = cfg.sibling_orders if run.pre.has_siblings else 1
    budget = FoldBudget(deadline, len(state.val_idx), len(run.test) * orders, cfg.epochs,
                        max(1, cfg.epochs * steps_per_epoch), n_extra_val=len(state.val_idx) * (orders - 1))
    probe = list(range(min(len(state.val_inputs), cfg.eval_batch_size)))
    budget.eval_rate = evaluate_fold(run, state, only=probe)[1]
    return budget


def epoch_fits(run: PhraseRun, state: FoldState, budget: FoldBudget, epoch: int) -> bool:
    """False (and said) when the clock would stop this later epoch too early for it to pay off."""
    from solution.distributed import any_true

    if epoch > 0 and state.step and any_true(not budget.starts_epoch(state.train_time / state.step), run.dist,
                                             run.device):
        log.info("fold %d: epoch %d not started, the clock would stop it within %.0f%% of its steps", state.fold,
                 epoch + 1, 100 * budget.min_epoch_share)
        return False
    return True


def score_epoch(run: PhraseRun, state: FoldState, budget: FoldBudget, record: dict, stopped_by: str) -> None:
    """Score the validation rows after an epoch (the weight average, if any) and add it to ``record``."""
    from solution.runtime import peak_memory_mb

    with state.averaged():
        state.val_pred, budget.eval_rate = evaluate_fold(run, state)
    record.update(val_pearson=pearson(state.val_pred, run.train.subset(state.val_idx).columns["score"]),
                  eval_pairs_per_s=budget.eval_rate, wall_s=run.clock.elapsed(), stopped_by=stopped_by,
                  **peak_memory_mb(run.device))


def save_epoch(run: PhraseRun, state: FoldState, record: dict) -> None:
    """Keep the epoch: its record in the history and metrics.json, and the checkpoint ``--resume`` reads."""
    state.history.append(record)
    log.info("fold %d epoch %d: loss %.4f  val Pearson %.4f  %.0f pairs/s", state.fold, record["epoch"],
             record["train_loss"], record["val_pearson"], record["pairs_per_s"])
    atomic_torch_save(state.checkpoint(), run.run_dir / state.dir / "checkpoint.pt")
    run.metrics["folds"][str(state.fold)] = {"epochs": state.history, "restarts": state.restarts}
    run.save_state()


@dataclass
class EpochTally:
    """What an epoch's steps add up to for its record and progress bar."""

    start: float = field(default_factory=time.time)
    slots: int = 0  # real target slots trained on
    sequences: int = 0
    loss_sum: float = 0.0
    steps: int = 0
    losses: list[float] = field(default_factory=list)  # the scoring losses: what the collapse guard reads
    aux_steps: list[StepResult] = field(default_factory=list)  # the steps that ran the NT-Xent pass

    def add(self, step: StepResult, sequences: int) -> None:
        self.losses.append(step.scoring)
        if not math.isnan(step.aux_ratio):
            self.aux_steps.append(step)
        self.slots, self.sequences = self.slots + step.slots, self.sequences + sequences
        self.loss_sum, self.steps = self.loss_sum + step.scoring, self.steps + 1


def train_one_epoch(run: PhraseRun, state: FoldState, epoch: int, budget: FoldBudget) -> tuple[dict, str]:
    """Train one epoch (or until the fold's time is up); returns (the epoch's record, what stopped it:
    "epochs", "budget", "collapsed" or "fallback")."""
    from tqdm.auto import tqdm

    from solution.distributed import any_true
    from solution.phrase.contrastive import contrastive_weight
    from solution.scheduler import StepTimer, cosine_factor, set_lr

    cfg, dist = run.cfg, run.dist
    inputs, batches = epoch_inputs(run, state, epoch)
    timer = StepTimer()
    state.train_model.train()
    tally, stopped_by, aux_weight = EpochTally(), "epochs", 0.0
    bar = tqdm(batches, desc=f"fold {state.fold} epoch {epoch + 1}/{cfg.epochs}", disable=not dist.is_main,
               mininterval=1 if sys.stderr.isatty() else 30, dynamic_ncols=True)
    # a step's time follows its padded tokens, which vary by batch: the forecast is per token (docs/decisions/fold-clock.md)
    tokens = [len(idx) * max(len(inputs.ids[i]) for i in idx) for idx in batches]
    for idx, step_tokens in zip(bar, tokens):
        progress = budget.progress(state.step, state.train_time + time.time() - tally.start, epoch)
        set_lr(state.optimizer, cosine_factor(progress, cfg.warmup_ratio))
        aux_weight = contrastive_weight(cfg.contrastive_weight, progress, cfg.contrastive_ramp)
        tally.add(train_step(run, state, inputs, idx, aux_weight), len(idx))
        token_s = timer.lap(tally.steps, work=step_tokens)
        if token_s is not None and epoch == state.start_epoch:
            if plan_fold(run, state, budget, epoch, token_s * sum(tokens) / len(tokens)):
                stopped_by = "fallback"
                break
        report_step(run, state, epoch, tally, bar)
        if any_true(budget.exhausted(), dist, run.device):
            stopped_by = "budget"
            break
        if halfway_check_due(cfg, state, epoch, tally.steps, len(batches)):
            if any_true(dist.is_main and collapsed_early(run, state, tally.losses), dist, run.device):
                stopped_by = "collapsed"
                break
            state.train_model.train()
    bar.close()
    return epoch_record(run, state, epoch, tally, aux_weight), stopped_by


def plan_fold(run: PhraseRun, state: FoldState, budget: FoldBudget, epoch: int, step_s: float) -> bool:
    """A few steps into a fold, its step time known: give the extra validation orders' time to training
    when the clock will cut it, then True when the run should fall back to its smaller model, else say
    whether the steps still fall short."""
    skip_extra_validation(run, state, budget, epoch, step_s)
    if fallback_due(run, state, budget, epoch, step_s):
        return True
    if run.dist.is_main:
        warn_if_budget_short(run, state, budget, epoch, step_s)
    return False


def report_step(run: PhraseRun, state: FoldState, epoch: int, tally: EpochTally, bar) -> None:
    """The progress bar's figures, and every ``log_every`` steps a line of steps.jsonl."""
    pairs_s = tally.slots * run.dist.world_size / max(1e-6, time.time() - tally.start)
    lr_now = state.optimizer.param_groups[0]["lr"]
    loss = tally.loss_sum / tally.steps
    bar.set_postfix(loss=f"{loss:.4f}", pairs_s=f"{pairs_s:.0f}", lr=f"{lr_now:.1e}", refresh=False)
    if run.dist.is_main and state.step % run.cfg.log_every == 0:
        with open(run.run_dir / "steps.jsonl", "a") as f:
            f.write(json.dumps({"fold": state.fold, "epoch": epoch + 1, "step": state.step, "loss": loss,
                                "lr": lr_now, "pairs_per_s": pairs_s, "elapsed_s": run.clock.elapsed()}) + "\n")


def epoch_record(run: PhraseRun, state: FoldState, epoch: int, tally: EpochTally, aux_weight: float) -> dict:
    """The epoch's line in metrics.json (before its validation); adds its time to the fold's."""
    train_s = time.time() - tally.start
    state.train_time += train_s
    world = run.dist.world_size
    record = {"epoch": epoch + 1, "steps": state.step, "train_loss": tally.loss_sum / max(1, tally.steps),
              "pairs_per_s": tally.slots * world / max(1e-6, train_s),
              "sequences_per_s": tally.sequences * world / max(1e-6, train_s), "train_s": train_s}
    if run.cfg.contrastive_weight > 0:
        record.update(contrastive_summary(tally.aux_steps, aux_weight if tally.steps else 0.0))
    return record


def finish_fold(run: PhraseRun, state: FoldState, budget: FoldBudget, stopped_by: str) -> FoldResult:
    """Score the trained fold: validation over the sibling orders the budget kept (the first, each group's
    targets by text, is the last epoch's validation pass), test over every order; save its weights. Returns
    (validation predictions, test predictions, fold metrics)."""
    if state.ema is not None:  # the fold is the weight average from here on: scored, predicted and saved
        state.ema.copy_to(state.model)
    test_pred = np.zeros(len(run.test), dtype=np.float32)
    fold_metrics = {"epochs": state.history, "restarts": state.restarts, "stopped_by": stopped_by,
                    "n_train": len(state.tr_table),
                    "n_val": len(state.val_idx),
                    "val_pearson": state.history[-1]["val_pearson"] if state.history else float("nan")}
    if not run.dist.is_main:
        return state.val_pred, test_pred, fold_metrics
    if budget.n_extra_val and state.history:
        score_extra_orders(run, state, budget, fold_metrics)
    cfg = run.cfg
    test_orders = run.pre.build_orders(run.test, run.test_contexts, cfg.sibling_orders)
    test_pred = predict_orders(state.model, test_orders, state.names, cfg.eval_batch_size, run.device,
                               run.precision, run.pre.encoder.pad_id)
    atomic_torch_save(state.model.trainable_state_dict(), run.run_dir / state.dir / "trainable_state.pt")
    return state.val_pred, test_pred, fold_metrics


def score_extra_orders(run: PhraseRun, state: FoldState, budget: FoldBudget, fold_metrics: dict) -> None:
    """Average the validation predictions over the sibling orders the budget kept, into ``fold_metrics``."""
    cfg, val_table = run.cfg, run.train.subset(state.val_idx)
    val_orders = cfg.sibling_orders if budget.score_extra_val else 1
    fold_metrics["val_sibling_orders"] = val_orders
    if val_orders > 1:
        orders = run.pre.build_orders(val_table, run.train_contexts.subset(state.val_idx), val_orders)
        others = predict_orders(state.model, orders[1:], state.names, cfg.eval_batch_size, run.device,
                                run.precision, run.pre.encoder.pad_id)
        state.val_pred = (state.val_pred + (val_orders - 1) * others) / val_orders
        fold_metrics.update(val_pearson_first_order=fold_metrics["val_pearson"],
                            val_pearson=pearson(state.val_pred, val_table.columns["score"]))
        log.info("fold %d: val Pearson %.4f over %d sibling orders (the first alone %.4f)", state.fold,
                 fold_metrics["val_pearson"], val_orders, fold_metrics["val_pearson_first_order"])


def finish_run(run: PhraseRun, oof: np.ndarray, test_preds: list[np.ndarray]) -> None:
    """Out-of-fold Pearson, the submission (test scores averaged over folds), oof.csv, the complete state,
    report.png."""
    from inference.io import write_scores
    from solution.report import write_report

    cfg, metrics = run.cfg, run.metrics
    submission = Path(cfg.submission) if cfg.submission else Path("submissions") / run.run_dir.name / "submission.csv"
    scored = ~np.isnan(oof)
    labels = np.asarray(run.train.columns["score"], dtype=np.float32)
    metrics["oof_pearson"] = pearson(oof[scored], labels[scored])
    metrics["fold_pearson"] = {k: v["val_pearson"] for k, v in metrics["folds"].items()}
    metrics["wall_s"] = run.clock.elapsed()
    metrics["submission"] = str(submission)
    write_scores(submission, run.test.ids, np.mean(test_preds, axis=0))
    write_oof(run.run_dir / "oof.csv", run.train, run.folds, oof)
    run.save_state(complete=True)
    write_report(run.run_dir)
    log.info("validation Pearson (out-of-fold, %d fold(s)): %.4f", cfg.folds, metrics["oof_pearson"])
    log.info("submission: %s   run: %s   wall: %.0f s", submission, run.run_dir, metrics["wall_s"])
    print(f"validation Pearson: {metrics['oof_pearson']:.4f}")
    print(f"submission written: {submission}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    from solution.config import config_reference
    from solution.phrase.config import PhraseTrainConfig

    p = argparse.ArgumentParser(
        prog="python -m solution.train", description=__doc__, epilog=config_reference(PhraseTrainConfig),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(p)
    p.add_argument("--data", help="data folder (uspppm/ and cpc/ inside)")
    p.add_argument("--folds", type=int, help="number of folds to train (test predictions are averaged)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    from solution.phrase.config import PhraseTrainConfig

    args = parse_args(sys.argv[1:] if argv is None else argv)
    return run_from_cli(args, ("data", "folds"), PhraseTrainConfig, "phrase", run)
