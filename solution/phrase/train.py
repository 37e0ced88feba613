"""Train the phrase matcher and write a Kaggle submission: ``python -m solution.train --help``.

    python -m solution.train                                   # mpnet (MiniLM on CPUs too slow for it), CPU budget
    python -m solution.train --config configs/gpu.toml --model microsoft/deberta-v3-large --folds 5
    torchrun --nproc_per_node 4 -m solution.train --config configs/gpu.toml --out runs/big

Stops at ``--epochs`` or ``--budget-minutes``, whichever comes first; on the clock it finishes the
step, evaluates and still writes the whole submission. Each epoch is checkpointed and ``--resume``
continues an interrupted run. ``python -m solution.train embedder ...`` trains retrieval embedders.

In open_clip's shape: :func:`prepare` builds what every fold shares (:class:`PhraseRun`),
:func:`setup_fold` the model, optimizer and resumed state (:class:`FoldState`),
:func:`train_one_epoch` runs the loop, :func:`evaluate_fold` scores validation, :func:`run` ties
the folds together and writes the outputs. :class:`FoldBudget` holds the wall-clock arithmetic.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from solution.backbone import DEFAULT_MODEL
from solution.phrase.evaluate import pearson, predict_orders, predict_scores
from solution.run_folder import (
    Clock,
    RunFolder,
    add_common_options,
    atomic_json,
    atomic_torch_save,
    load_checkpoint,
    run_from_cli,
)

log = logging.getLogger("solution.train")


def batch_loss(cfg, out: dict, target, mask):
    """The scoring loss of one batch over its real target slots: the score loss (``cfg.loss`` on the expected
    score) plus, with ``coral_weight``, the ordinal head's per-threshold binary cross-entropy. The NT-Xent
    term is not part of it: it has its own pass and gradient (:func:`auxiliary_gradients`), and the
    collapse guard watches this loss alone (with NT-Xent in it, the total kept falling through a fold
    whose scores had collapsed to the label prior)."""
    import torch
    import torch.nn.functional as F

    from solution.phrase.losses import coral_loss, smooth_k2_loss

    pred, label = out["score"].reshape(mask.shape)[mask], target[mask]
    if cfg.loss == "mse":
        loss = F.mse_loss(pred, label)
    elif cfg.loss == "bce":
        loss = F.binary_cross_entropy(pred.clamp(1e-6, 1 - 1e-6), label)
    else:
        loss = smooth_k2_loss(pred, label, cfg.k2_k, cfg.k2_thr)
    if cfg.coral_weight > 0 and cfg.head == "ordinal":
        logits = out["logits"].reshape(*mask.shape, -1)[mask]
        loss = loss + cfg.coral_weight * coral_loss(logits, label)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss is {loss.item()}; lower --set lr=...")
    return loss


def auxiliary_gradients(run: PhraseRun, state: FoldState, phrases: dict | None, weight: float):
    """(gradients of ``weight`` x NT-Xent for every trainable parameter (None where it does not reach), the
    loss), from the bare-phrase pass of ``phrases`` (:func:`solution.phrase.contrastive.contrastive_batch`);
    (None, nan) when no process of the run has a positive in its batch. Taken with ``autograd.grad`` so the
    scoring loss's gradient can be measured apart before the two are added. Under DDP the pass runs on the
    bare model and the gradients are averaged here (a process without positives adds zeros)."""
    import torch

    from solution.distributed import all_reduce_mean, any_true
    from solution.phrase.losses import nt_xent_loss
    from solution.precision import autocast

    cfg, device = run.cfg, run.device
    if not any_true(phrases is not None, run.dist, device):
        return None, float("nan")
    params = [p for p in state.model.parameters() if p.requires_grad]
    loss = float("nan")
    if phrases is None:
        grads: list = [None] * len(params)
    else:
        n = phrases["n_anchors"]
        feeds = {k: phrases[k].to(device) for k in ("input_ids", "attention_mask", "section_ids", "class_ids")}
        with autocast(run.precision, device):
            vectors = state.model.phrase_vectors(**feeds)
        aux = nt_xent_loss(vectors[:n], vectors[n:], phrases["target_group"].to(device),
                           phrases["target_score"].to(device), phrases["anchor_key"].to(device),
                           cfg.contrastive_tau, cfg.contrastive_min_score, cfg.contrastive_hard_max_score)
        if not torch.isfinite(aux):
            raise FloatingPointError(f"NT-Xent loss is {aux.item()}; lower --set lr=...")
        grads = list(torch.autograd.grad(state.scaler.scale(weight * aux), params, allow_unused=True))
        loss = aux.item()
    if run.dist.enabled:
        grads = all_reduce_mean([g if g is not None else torch.zeros_like(p) for p, g in zip(params, grads)])
    return grads, loss


def subset_by_anchor(table, max_rows: int, seed: int, min_anchors: int = 1):
    """About ``max_rows`` rows made of whole anchors (groups stay intact for grouping and folds), and
    at least ``min_anchors`` anchors, so that a quick run still has one for every fold."""
    anchors = sorted(set(table.columns["anchor"]))
    random.Random(seed).shuffle(anchors)
    rows_of: dict[str, list[int]] = {}
    for i, a in enumerate(table.columns["anchor"]):
        rows_of.setdefault(a, []).append(i)
    keep: list[int] = []
    for taken, a in enumerate(anchors):
        if len(keep) >= max_rows and taken >= min_anchors:
            break
        keep += rows_of[a]
    return table.subset(sorted(keep))


def level_counts(scores) -> list[int]:
    return [sum(1 for s in scores if abs(s - k / 4) < 1e-6) for k in range(5)]


@dataclass
class PhraseRun:
    """What every fold of one run shares: config, data, inputs, device and the run folder."""

    cfg: Any
    dist: Any  # solution.distributed.DistInfo
    device: str
    precision: str
    pre: Any  # inference.phrase.inputs.Preprocessor
    train: Any  # PairTable with scores
    train_contexts: Any
    test: Any
    test_contexts: Any
    folds: np.ndarray
    folder: RunFolder
    model_config: Any
    clock: Clock
    metrics: dict = field(default_factory=dict)
    fallback: Any = None  # the config to restart on when the clock is too short for this backbone (cfg.fallback())

    @property
    def run_dir(self) -> Path:
        return self.folder.path

    def save_state(self, complete: bool = False) -> None:
        if self.dist.is_main:
            self.folder.save_state(self.cfg.to_dict(), self.clock.elapsed(), complete, self.metrics)


@dataclass
class FoldBudget:
    """A fold's share of the wall clock, less the evaluations it still owes.

    Scoring speed (rows/s) is timed on one validation batch before training (the first training
    steps are too slow and noisy to extrapolate from) and re-measured at every epoch's evaluation.
    Stopping mid-epoch still owes that epoch's validation pass and checkpoint before the final
    scoring: leaving them out made an fp32 run overrun its 30 minutes by half a minute.

    The schedule anneals towards where training will really stop (:meth:`train_plan`): the last step,
    or the clock's stop, which owes validation passes only for the epochs it reaches. Reserving one
    for every epoch trained the mpnet default on an AVX2-only CPU at lr 0 from its first step
    (out-of-fold 0.028; 0.667 with this, RESULTS.md).

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
    save_s: float = 15.0  # checkpoints and outputs (an mpnet checkpoint with its AdamW state is ~1.3 GB)
    n_extra_val: int = 0  # validation rows of the sibling orders after the first: they only sharpen the estimate
    score_extra_val: bool = True  # False once the clock would cut training to score them (see plan_fold)
    # a later epoch the clock would stop before this share of its steps is not started: its few steps, near
    # the schedule's end, would not pay for its validation pass (a MiniLM fold once ran 1 step for ~15 s)
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


@dataclass
class FoldState:
    """One fold's model, optimizer and progress: what a checkpoint holds."""

    fold: int
    model: Any
    train_model: Any  # the model, or its DistributedDataParallel wrapper
    names: list[str]
    optimizer: Any
    scaler: Any
    ctx_dropout: Any  # torch.Generator of the context dropout
    bank: Any  # solution.phrase.contrastive.PhraseBank of the fold's training rows (None without NT-Xent)
    ema: Any  # solution.ema.WeightEMA of the trainable weights (None when ema_decay is 0)
    tr_table: Any
    tr_contexts: Any
    val_idx: np.ndarray
    val_inputs: Any
    history: list[dict] = field(default_factory=list)
    start_epoch: int = 0
    step: int = 0
    train_time: float = 0.0
    val_pred: np.ndarray | None = None
    restarts: list[dict] = field(default_factory=list)  # first epochs thrown away (see needs_restart)

    @property
    def dir(self) -> Path:
        return Path(f"fold{self.fold}")

    def checkpoint(self) -> dict:
        import torch

        from solution.runtime import rng_states

        return {"epoch": self.history[-1]["epoch"], "step": self.step,  # written after an epoch's record
                "train_time_s": self.train_time, "history": self.history,
                "val_pred": torch.from_numpy(self.val_pred), "model": self.model.trainable_state_dict(),
                "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(), "rng": rng_states(),
                "ctx_dropout": self.ctx_dropout.get_state(), "restarts": self.restarts,
                "ema": self.ema.state_dict() if self.ema is not None else None}

    def restore(self, ckpt: dict) -> None:
        from solution.runtime import restore_rng_states

        self.model.load_state_dict(ckpt["model"], strict=False)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.start_epoch, self.step, self.train_time = ckpt["epoch"], ckpt["step"], ckpt["train_time_s"]
        self.history, self.val_pred = ckpt["history"], ckpt["val_pred"].numpy()
        self.restarts = ckpt.get("restarts", [])
        restore_rng_states(ckpt.get("rng"))
        if "ctx_dropout" in ckpt:
            self.ctx_dropout.set_state(ckpt["ctx_dropout"])
        if self.ema is not None and ckpt.get("ema"):
            self.ema.load_state_dict(ckpt["ema"])

    def averaged(self):
        """A block that evaluates the weight average (ema_decay > 0), or the trained weights."""
        return self.ema.applied(self.model) if self.ema is not None else contextlib.nullcontext()


def setup_fold(run: PhraseRun, fold: int, resume: bool, lr_scale: float = 1.0) -> FoldState:
    """The fold's model (head initialised from the label prior), optimizer (every group's lr x ``lr_scale``:
    a restart halves them all) and, on resume, its checkpoint."""
    import torch

    from solution.ema import WeightEMA
    from solution.optim import build_optimizer
    from solution.phrase.contrastive import PhraseBank
    from solution.phrase.data import model_input_names
    from solution.phrase.model import build_model
    from solution.precision import grad_scaler

    cfg = run.cfg
    train_idx, val_idx = np.flatnonzero(run.folds != fold), np.flatnonzero(run.folds == fold)
    tr_table = run.train.subset(train_idx)
    model = build_model(run.model_config).to(run.device)
    if cfg.contrastive_weight <= 0:  # keeps the unused projection out of the optimizer and the checkpoint
        model.phrase_projection.requires_grad_(False)
    model.head.init_from_prior(level_counts(tr_table.columns["score"]))
    state = FoldState(fold=fold, model=model, train_model=model, names=model_input_names(model, cfg.layout),
                      optimizer=build_optimizer(model, cfg.lr * lr_scale, cfg.head_lr * lr_scale, cfg.weight_decay,
                                                cfg.layer_decay, cfg.adam_eps, cfg.fusion_lr * lr_scale,
                                                cfg.lora_plus_ratio),
                      scaler=grad_scaler(run.precision, run.device),
                      ctx_dropout=torch.Generator().manual_seed(cfg.seed + fold), tr_table=tr_table,
                      bank=(PhraseBank.of(tr_table.columns["anchor"], tr_table.columns["target"], run.pre.encoder)
                            if cfg.contrastive_weight > 0 else None),
                      ema=WeightEMA.of(model, cfg.ema_decay) if cfg.ema_decay > 0 else None,
                      tr_contexts=run.train_contexts.subset(train_idx), val_idx=val_idx,
                      val_inputs=run.pre.build(run.train.subset(val_idx), run.train_contexts.subset(val_idx)),
                      val_pred=np.full(len(val_idx), np.nan, dtype=np.float32))
    ckpt_path = run.run_dir / state.dir / "checkpoint.pt"
    if resume and ckpt_path.exists():
        state.restore(load_checkpoint(ckpt_path))
        log.info("fold %d: resuming after epoch %d (step %d)", fold, state.start_epoch, state.step)
    if run.dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        # find_unused_parameters: backbones may hold modules that never reach the loss (poolers, heads)
        device_ids = [torch.device(run.device).index] if "cuda" in run.device else None
        state.train_model = DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)
    return state


def epoch_inputs(run: PhraseRun, state: FoldState, epoch: int):
    """(inputs, batches) of one epoch: the multi layout reshuffles and redraws its chunks every epoch."""
    from solution.phrase.data import length_bucketed_batches

    cfg = run.cfg
    rng = random.Random(cfg.seed * 1000 + state.fold * 100 + epoch)  # same on every process and on resume
    inputs = run.pre.build(state.tr_table, state.tr_contexts, rng, cfg.small_chunk_prob)
    batches = length_bucketed_batches([len(ids) for ids in inputs.ids], cfg.batch_size, rng)
    if run.dist.enabled:  # every process gets the same number of batches (wrap around, drop nothing)
        per_rank = math.ceil(len(batches) / run.dist.world_size)
        batches = (batches * 2)[: per_rank * run.dist.world_size][run.dist.rank :: run.dist.world_size]
    return inputs, batches


@dataclass
class StepResult:
    scoring: float  # the scoring loss (what the collapse guard watches)
    slots: int  # real target slots trained on
    nt_xent: float = float("nan")  # NT-Xent loss (nan: not run this step)
    aux_ratio: float = float("nan")  # |weighted NT-Xent gradient| / |scoring gradient| on the shared weights
    aux_scale: float = float("nan")  # what that ratio's cap scaled the NT-Xent gradient by


def train_step(run: PhraseRun, state: FoldState, inputs, idx: list[int], aux_weight: float = 0.0) -> StepResult:
    """One optimizer step on the sequences ``idx``: the scoring loss's gradient, plus NT-Xent's at
    ``aux_weight`` bounded against it (:func:`solution.phrase.contrastive.add_auxiliary_gradient`), then the
    clip (after the weighting) and the step."""
    import torch

    from solution.phrase.contrastive import add_auxiliary_gradient, contrastive_batch
    from solution.phrase.data import collate
    from solution.precision import autocast

    cfg, device = run.cfg, run.device
    scores = state.tr_table.columns["score"]
    batch = {k: v.to(device) for k, v in collate(inputs, idx, run.pre.encoder.pad_id, state.names, scores).items()}
    if cfg.context_dropout > 0 and cfg.cpc_fusion:
        hide = torch.rand(len(idx), generator=state.ctx_dropout) < cfg.context_dropout
        batch["class_ids"] = batch["class_ids"].masked_fill(hide.to(device), 0)
    target, mask = batch.pop("scores"), batch.pop("target_mask")
    batch.pop("group_ids")
    result = StepResult(scoring=float("nan"), slots=int(mask.sum()))
    aux_grads = None
    if aux_weight > 0:
        phrases = contrastive_batch(state.bank, [inputs.rows[i] for i in idx], [inputs.group_ids[i] for i in idx],
                                    scores, batch["section_ids"], batch["class_ids"], cfg.contrastive_min_score,
                                    cfg.contrastive_hard_max_score, cfg.contrastive_max_targets, cfg.seed + state.step)
        aux_grads, result.nt_xent = auxiliary_gradients(run, state, phrases, aux_weight)
    with autocast(run.precision, device):
        out = state.train_model(**batch, train_outputs=True, num_slots=mask.shape[1])
    scoring = batch_loss(cfg, out, target, mask)
    state.scaler.scale(scoring).backward()
    if aux_grads is not None:
        params = [p for p in state.model.parameters() if p.requires_grad]
        result.aux_ratio, result.aux_scale = add_auxiliary_gradient(params, aux_grads, cfg.contrastive_max_grad_ratio)
    state.scaler.unscale_(state.optimizer)
    torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.grad_clip)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    if state.ema is not None:
        state.ema.update(state.model)
    state.optimizer.zero_grad(set_to_none=True)
    state.step += 1
    result.scoring = scoring.item()
    return result


def train_one_epoch(run: PhraseRun, state: FoldState, epoch: int, budget: FoldBudget) -> tuple[dict, str]:
    """Train one epoch (or until the fold's time is up); returns (the epoch's record, what stopped it)."""
    from tqdm.auto import tqdm

    from solution.distributed import any_true
    from solution.phrase.contrastive import contrastive_weight
    from solution.scheduler import StepTimer, cosine_factor, set_lr

    cfg, dist = run.cfg, run.dist
    inputs, batches = epoch_inputs(run, state, epoch)
    timer = StepTimer()
    state.train_model.train()
    start, seen, seen_seqs, loss_sum, loss_n, stopped_by = time.time(), 0, 0, 0.0, 0, "epochs"
    scoring_losses: list[float] = []  # what the collapse guard reads (NT-Xent has its own pass)
    aux_steps: list[StepResult] = []  # the steps that ran the NT-Xent pass
    bar = tqdm(batches, desc=f"fold {state.fold} epoch {epoch + 1}/{cfg.epochs}", disable=not dist.is_main,
               mininterval=1 if sys.stderr.isatty() else 30, dynamic_ncols=True)
    # a step's time follows its padded tokens: the mpnet default's steps 2-6 held half the epoch's mean, and
    # timed per step they forecast 233 steps where 161 ran (per token: ~141)
    tokens = [len(idx) * max(len(inputs.ids[i]) for i in idx) for idx in batches]
    for idx, step_tokens in zip(bar, tokens):
        progress = budget.progress(state.step, state.train_time + time.time() - start, epoch)
        set_lr(state.optimizer, cosine_factor(progress, cfg.warmup_ratio))
        aux_weight = contrastive_weight(cfg.contrastive_weight, progress, cfg.contrastive_ramp)
        step = train_step(run, state, inputs, idx, aux_weight)
        scoring_losses.append(step.scoring)
        if not math.isnan(step.aux_ratio):
            aux_steps.append(step)
        seen, seen_seqs, loss_sum, loss_n = seen + step.slots, seen_seqs + len(idx), loss_sum + step.scoring, loss_n + 1
        token_s = timer.lap(loss_n, work=step_tokens)
        if token_s is not None and epoch == state.start_epoch:
            if plan_fold(run, state, budget, epoch, token_s * sum(tokens) / len(tokens)):
                stopped_by = "fallback"
                break
        pairs_s = seen * dist.world_size / max(1e-6, time.time() - start)
        lr_now = state.optimizer.param_groups[0]["lr"]
        bar.set_postfix(loss=f"{loss_sum / loss_n:.4f}", pairs_s=f"{pairs_s:.0f}", lr=f"{lr_now:.1e}", refresh=False)
        if dist.is_main and state.step % cfg.log_every == 0:
            with open(run.run_dir / "steps.jsonl", "a") as f:
                f.write(json.dumps({"fold": state.fold, "epoch": epoch + 1, "step": state.step, "loss": loss_sum / loss_n,
                                    "lr": lr_now, "pairs_per_s": pairs_s, "elapsed_s": run.clock.elapsed()}) + "\n")
        if any_true(budget.exhausted(), dist, run.device):
            stopped_by = "budget"
            break
        if loss_n == len(batches) // 2 and len(batches) >= MIN_STEPS_FOR_EARLY_CHECK and may_restart(cfg, state, epoch):
            if any_true(dist.is_main and collapsed_early(run, state, scoring_losses), dist, run.device):
                stopped_by = "collapsed"
                break
            state.train_model.train()
    bar.close()
    train_s = time.time() - start
    state.train_time += train_s
    record = {"epoch": epoch + 1, "steps": state.step, "train_loss": loss_sum / max(1, loss_n),
              "pairs_per_s": seen * dist.world_size / max(1e-6, train_s),
              "sequences_per_s": seen_seqs * dist.world_size / max(1e-6, train_s), "train_s": train_s}
    if cfg.contrastive_weight > 0:
        record.update(contrastive_summary(aux_steps, aux_weight if loss_n else 0.0))
    return record, stopped_by


def contrastive_summary(steps: list[StepResult], last_weight: float) -> dict:
    """The NT-Xent part of an epoch's record: its loss, and how its weighted gradient compared with the scoring
    loss's on the shared weights (mean and largest ratio before the cap, mean scale the cap applied)."""
    def mean(values: list[float]) -> float:
        return float(np.mean(values)) if values else float("nan")

    ratios = [s.aux_ratio for s in steps]
    return {"nt_xent_loss": mean([s.nt_xent for s in steps]), "nt_xent_steps": len(steps),
            "nt_xent_weight_last": last_weight, "aux_grad_ratio": mean(ratios),
            "aux_grad_ratio_max": max(ratios) if ratios else float("nan"),
            "aux_grad_scale": mean([s.aux_scale for s in steps])}


def plan_fold(run: PhraseRun, state: FoldState, budget: FoldBudget, epoch: int, step_s: float) -> bool:
    """A few steps into a fold, its step time known: when the clock will stop training early, the final
    validation skips the extra sibling orders and their time goes to training (the test rows are still
    scored over every order, so the submission keeps its averaging; the out-of-fold estimate loses it,
    about 0.005). Then, unless the run should restart on its fallback model (returns True), say whether
    the steps still fall short."""
    if budget.n_extra_val and budget.score_extra_val and budget.cuts_training(state.step, epoch, step_s):
        budget.score_extra_val = False
        log.info("fold %d: the clock will stop training early, so validation is scored in the first sibling "
                 "order only and its %d other sibling orders' %.0f s go to training", state.fold,
                 run.cfg.sibling_orders - 1, budget.extra_val_s)
    if fallback_due(run, state, budget, epoch, step_s):
        return True
    if run.dist.is_main:
        warn_if_budget_short(run, state, budget, epoch, step_s)
    return False


def fallback_due(run: PhraseRun, state: FoldState, budget: FoldBudget, epoch: int, step_s: float) -> bool:
    """True when the clock would train the default backbone for fewer than ``fallback_below_epochs`` epochs a
    fold: on an AVX2-only CPU mpnet trained 0.8 of an epoch a fold in 30 minutes (out-of-fold 0.667) where
    the packaged MiniLM trained 5 (0.744); with 2-3 epochs mpnet wins (0.76-0.79). Decided once, in fold 0
    (every fold trains the same model), and recorded as ``model_fallback`` in metrics.json."""
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


def warn_if_budget_short(run: PhraseRun, state: FoldState, budget: FoldBudget, epoch: int, step_s: float) -> None:
    """Say once a run, a few steps into a fold, when the clock will stop its training early (an AVX2-only
    CPU runs the mpnet default at ~15 steps/min), and which budget would fit every fold's steps."""
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


def plan_fold_start(run: PhraseRun, state: FoldState, budget: FoldBudget) -> None:
    """Before a fold trains: when scoring (a validation pass, the test rows over every sibling order) and
    saving will take more of its clock than training can, the clock will surely cut training, so the
    validation's extra sibling orders give their time to it (as :func:`plan_fold` does once steps are
    timed, which a fold this short may never reach); and say so: a model trained for seconds is not worth
    its submission."""
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


MIN_STEPS_FOR_EARLY_CHECK = 40  # fewer steps in an epoch give too noisy a loss trend to judge
STALL_DROP = 0.03  # a healthy first half-epoch lowers the loss ~9% (0.665 -> 0.605); a collapsed one ~0%


def may_restart(cfg, state: FoldState, epoch: int) -> bool:
    """A fold restarts at most once, only from its first epoch, and only if an epoch is left to use it."""
    return cfg.restart_below > -1 and not state.restarts and epoch == 0 and epoch + 1 < cfg.epochs


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
    costs half an epoch instead of a whole one plus its validation (~4 of a fold's ~14 minutes with
    mpnet on 2 cores).
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

    Full fine-tuning of a base-size backbone sometimes never leaves the label prior:
    all-mpnet-base-v2 did so in two of the seven runs of its default at lr 1e-4 (one bf16, one
    fp32; 2-core Xeon), in a 1-epoch probe at 5e-5 and in one of the first four folds at 5e-5,
    train loss flat at the constant-score value where healthy first epochs reach validation Pearson
    ~0.7. Rounding decides it (the same command and seed did both), so such a fold is started
    again, once, at half of every learning rate (backbone, head, fusion); the lost half-epoch costs
    less than a useless fold. Not on a fold's last epoch (no time left to use a restart) nor when the clock stopped it.
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


def evaluate_fold(run: PhraseRun, state: FoldState, only: list[int] | None = None) -> tuple[np.ndarray, float]:
    """(validation scores, rows scored per second); ``only`` scores just those sequences (a timing probe)."""
    t0 = time.time()
    preds = predict_scores(state.model, state.val_inputs, state.names, run.cfg.eval_batch_size, run.device,
                           run.precision, run.pre.encoder.pad_id, only=only)
    rows = len(state.val_idx) if only is None else sum(len(state.val_inputs.rows[i]) for i in only)
    return preds, rows / max(1e-6, time.time() - t0)


def train_fold(run: PhraseRun, fold: int, deadline: float, resume: bool) -> tuple[np.ndarray, np.ndarray, dict]:
    """Train one fold; returns (validation predictions, test predictions, fold metrics)."""
    from solution.distributed import any_true, barrier
    from solution.runtime import peak_memory_mb

    cfg, dist = run.cfg, run.dist
    state = setup_fold(run, fold, resume)
    fold_dir = run.run_dir / state.dir
    fold_dir.mkdir(parents=True, exist_ok=True)
    steps_per_epoch = len(epoch_inputs(run, state, 0)[1])  # this process's share
    orders = cfg.sibling_orders if run.pre.has_siblings else 1
    budget = FoldBudget(deadline, len(state.val_idx), len(run.test) * orders, cfg.epochs,
                        max(1, cfg.epochs * steps_per_epoch), n_extra_val=len(state.val_idx) * (orders - 1))
    probe = list(range(min(len(state.val_inputs), cfg.eval_batch_size)))
    budget.eval_rate = evaluate_fold(run, state, only=probe)[1]
    plan_fold_start(run, state, budget)
    stopped_by, epoch = "epochs", state.start_epoch
    while epoch < cfg.epochs:
        if epoch > 0 and state.step and any_true(not budget.starts_epoch(state.train_time / state.step), dist,
                                                   run.device):
            log.info("fold %d: epoch %d not started, the clock would stop it within %.0f%% of its steps", fold,
                     epoch + 1, 100 * budget.min_epoch_share)
            stopped_by = "budget"
            break
        record, stopped_by = train_one_epoch(run, state, epoch, budget)
        if stopped_by == "fallback":
            state = None  # frees the model and its optimizer before the fallback's are built
            switch_to_fallback(run)
            return train_fold(run, fold, deadline, resume=False)
        if dist.is_main:
            with state.averaged():
                state.val_pred, budget.eval_rate = evaluate_fold(run, state)
            record.update(val_pearson=pearson(state.val_pred, run.train.subset(state.val_idx).columns["score"]),
                          eval_pairs_per_s=budget.eval_rate, wall_s=run.clock.elapsed(), stopped_by=stopped_by,
                          **peak_memory_mb(run.device))
        if any_true(dist.is_main and needs_restart(cfg, state, epoch, record), dist, run.device):
            restarts = logged_restart(cfg, state, record)
            state = None  # frees the collapsed model and its optimizer before the fresh ones are built
            state = setup_fold(run, fold, resume=False, lr_scale=restarts[-1]["next_lr"] / cfg.lr)
            state.restarts, epoch = restarts, 0
            continue
        if dist.is_main:
            state.history.append(record)
            log.info("fold %d epoch %d: loss %.4f  val Pearson %.4f  %.0f pairs/s", fold, epoch + 1,
                     record["train_loss"], record["val_pearson"], record["pairs_per_s"])
            atomic_torch_save(state.checkpoint(), fold_dir / "checkpoint.pt")
            run.metrics["folds"][str(fold)] = {"epochs": state.history, "restarts": state.restarts}
            run.save_state()
        barrier(dist)
        if stopped_by == "budget":
            break
        epoch += 1
    return finish_fold(run, state, budget, stopped_by)


def finish_fold(run: PhraseRun, state: FoldState, budget: FoldBudget,
                stopped_by: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """Score the trained fold: validation over the sibling orders the budget kept (the first, each group's
    targets by text, is the last epoch's validation pass), test over every order; save its weights. Returns
    (validation predictions, test predictions, fold metrics)."""
    cfg, fold = run.cfg, state.fold
    if state.ema is not None:  # the fold is the weight average from here on: scored, predicted and saved
        state.ema.copy_to(state.model)
    test_pred = np.zeros(len(run.test), dtype=np.float32)
    fold_metrics = {"epochs": state.history, "restarts": state.restarts, "stopped_by": stopped_by,
                    "n_train": len(state.tr_table),
                    "n_val": len(state.val_idx),
                    "val_pearson": state.history[-1]["val_pearson"] if state.history else float("nan")}
    if not run.dist.is_main:
        return state.val_pred, test_pred, fold_metrics
    val_table = run.train.subset(state.val_idx)
    if budget.n_extra_val and state.history:
        val_orders = cfg.sibling_orders if budget.score_extra_val else 1
        fold_metrics["val_sibling_orders"] = val_orders
        if val_orders > 1:
            orders = run.pre.build_orders(val_table, run.train_contexts.subset(state.val_idx), val_orders)
            others = predict_orders(state.model, orders[1:], state.names, cfg.eval_batch_size, run.device,
                                    run.precision, run.pre.encoder.pad_id)
            state.val_pred = (state.val_pred + (val_orders - 1) * others) / val_orders
            fold_metrics.update(val_pearson_first_order=fold_metrics["val_pearson"],
                                val_pearson=pearson(state.val_pred, val_table.columns["score"]))
            log.info("fold %d: val Pearson %.4f over %d sibling orders (the first alone %.4f)", fold,
                     fold_metrics["val_pearson"], val_orders, fold_metrics["val_pearson_first_order"])
    test_orders = run.pre.build_orders(run.test, run.test_contexts, cfg.sibling_orders)
    test_pred = predict_orders(state.model, test_orders, state.names, cfg.eval_batch_size, run.device,
                               run.precision, run.pre.encoder.pad_id)
    atomic_torch_save(state.model.trainable_state_dict(), run.run_dir / state.dir / "trainable_state.pt")
    return state.val_pred, test_pred, fold_metrics


def prepare(cfg, resume: bool) -> tuple[PhraseRun | None, dict | None]:
    """(the run's shared state, None), or (None, its metrics) when ``--resume`` finds it complete."""
    import torch

    from inference.io import check_output_path
    from inference.phrase.inputs import TableContexts
    from solution.config import validate
    from solution.distributed import init_distributed
    from solution.phrase.data import load_uspppm, make_folds
    from solution.precision import resolve_precision_with_probe
    from solution.runtime import flush_denormals, pick_device, seed_everything

    validate(cfg)  # before the run folder exists: a bad value leaves nothing behind
    fallback = cfg.fallback()  # a fallback config that does not load is said now, not when it is needed
    if cfg.submission:  # never over an input: the training data, the test file
        data_files = [Path(cfg.data) / "uspppm" / name for name in ("train.csv", "test.csv")]
        check_output_path(cfg.submission, data_files + ([cfg.test_csv] if cfg.test_csv else []))
    device = pick_device(cfg.device)
    dist = init_distributed(device)
    if device == "cuda":
        device = f"cuda:{dist.local_rank}"
    precision, precision_probe = resolve_precision_with_probe(cfg.precision, device)
    folder = RunFolder(run_folder_path(cfg, dist), kind="phrase")
    offset, finished = folder.open(resume)
    if finished is not None:
        return None, finished
    seed_everything(cfg.seed)
    flush_denormals()
    torch.set_num_threads(torch.get_num_threads())

    train, test, vocab = load_uspppm(cfg.data)
    if cfg.test_csv:
        from inference.io import read_pairs

        test = read_pairs(cfg.test_csv)
    if cfg.max_train_rows:
        train = subset_by_anchor(train, cfg.max_train_rows, cfg.seed, min_anchors=cfg.n_splits)
    run = PhraseRun(cfg, dist, device, precision, None, train, TableContexts.of(train, vocab), test,
                    TableContexts.of(test, vocab), make_folds(train, cfg.n_splits, cfg.seed), folder, None,
                    Clock(cfg.budget_minutes * 60, offset), fallback=fallback)
    tokenizer, template = build_model_inputs(run, vocab)
    run.metrics = {"run": folder.path.name, "device": device, "precision": precision,
                   "precision_probe": precision_probe, "layout": cfg.layout, "world_size": dist.world_size,
                   "folds": {}, "budget_minutes": cfg.budget_minutes}
    if dist.is_main:
        write_run_files(run, tokenizer, template, vocab, resume)
    return run, None


def build_model_inputs(run: PhraseRun, vocab) -> tuple[Any, Any]:
    """Set what depends on the backbone (``run.pre``, ``run.model_config``); returns (tokenizer, template)."""
    from inference.template import InputTemplate
    from solution.backbone import load_tokenizer
    from solution.phrase.data import preprocessor

    cfg = run.cfg
    tokenizer = load_tokenizer(cfg.model)
    template = InputTemplate(sep_token=tokenizer.sep_token, cls_token=tokenizer.cls_token, use_title=cfg.use_title,
                             group_targets=cfg.group_targets, layout=cfg.layout, max_targets=cfg.max_targets)
    run.pre = preprocessor(tokenizer, template, vocab, cfg.max_length)
    run.model_config = cfg.model_config((vocab.num_sections, vocab.num_classes), tokenizer.sep_token_id,
                                        tokenizer.cls_token_id)
    return tokenizer, template


def run_folder_path(cfg, dist) -> Path:
    """``cfg.out``, or a new timestamped name that every process agrees on."""
    run_dir = Path(cfg.out) if cfg.out else Path("runs") / time.strftime("phrase-%Y%m%d-%H%M%S")
    if dist.enabled and not cfg.out:
        import torch.distributed as tdist

        holder = [str(run_dir)]
        tdist.broadcast_object_list(holder, src=0)
        run_dir = Path(holder[0])
    return run_dir


def write_run_files(run: PhraseRun, tokenizer, template, vocab, resume: bool) -> None:
    """What a run folder holds besides checkpoints: tokenizer, CPC vocabulary, template, configs."""
    run_dir = run.run_dir
    run.folder.mark()
    tokenizer.save_pretrained(run_dir / "tokenizer")
    vocab.save(run_dir / "cpc_vocab.json")
    atomic_json(run_dir / "template.json", template.to_dict())
    atomic_json(run_dir / "model_config.json", run.model_config.to_dict())
    atomic_json(run_dir / "config.json", run.cfg.to_dict())
    if resume and (run_dir / "metrics.json").exists():
        run.metrics = json.loads((run_dir / "metrics.json").read_text())


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
        val_pred, test_pred, fold_metrics = train_fold(run_, fold, deadline, resume)
        oof[run_.folds == fold] = val_pred
        test_preds.append(test_pred)
        run_.metrics["folds"][str(fold)] = fold_metrics
        if dist.is_main:
            np.savez(fold_dir / "predictions.npz", val=val_pred, test=test_pred)
            atomic_json(fold_dir / "done.json", fold_metrics)
            # a finished fold is never resumed: its optimizer state (2x the weights: 0.9 GB for mpnet) goes
            (fold_dir / "checkpoint.pt").unlink(missing_ok=True)
        run_.save_state()
    if dist.is_main:
        finish_run(run_, oof, test_preds)
    barrier(dist)
    cleanup(dist)
    return run_.metrics


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


def write_oof(path: Path, table, folds: np.ndarray, oof: np.ndarray) -> None:
    import csv
    import io

    from inference.io import atomic_write_text

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "anchor", "target", "context", "score", "fold", "pred"])
    cols = table.columns
    for i in range(len(table)):
        if not np.isnan(oof[i]):
            writer.writerow([cols["id"][i], cols["anchor"][i], cols["target"][i], cols["context"][i],
                             cols["score"][i], int(folds[i]), f"{oof[i]:.6f}"])
    atomic_write_text(path, buffer.getvalue())


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
