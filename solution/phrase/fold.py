"""One fold of a phrase run: its model, optimizer and progress (:class:`FoldState`), built by
:func:`setup_fold`, its epochs' inputs and its validation scoring."""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from solution.phrase.evaluate import predict_scores
from solution.phrase.prepare import PhraseRun
from solution.run_folder import load_checkpoint

log = logging.getLogger("solution.train")


def level_counts(scores) -> list[int]:
    """How many of ``scores`` sit at each of the five levels 0, 0.25, ..., 1: the head's prior."""
    return [sum(1 for s in scores if abs(s - k / 4) < 1e-6) for k in range(5)]


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


def evaluate_fold(run: PhraseRun, state: FoldState, only: list[int] | None = None) -> tuple[np.ndarray, float]:
    """(validation scores, rows scored per second); ``only`` scores just those sequences (a timing probe)."""
    t0 = time.time()
    preds = predict_scores(state.model, state.val_inputs, state.names, run.cfg.eval_batch_size, run.device,
                           run.precision, run.pre.encoder.pad_id, only=only)
    rows = len(state.val_idx) if only is None else sum(len(state.val_inputs.rows[i]) for i in only)
    return preds, rows / max(1e-6, time.time() - t0)
