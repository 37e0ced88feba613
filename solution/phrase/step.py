"""One optimizer step of the phrase matcher: the scoring loss, the NT-Xent term's bounded gradient, the
clip and the step (:func:`train_step`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solution.phrase.fold import FoldState
from solution.phrase.prepare import PhraseRun


def batch_loss(cfg, out: dict, target, mask):
    """The scoring loss of one batch over its real target slots: the score loss (``cfg.loss`` on the expected
    score) plus, with ``coral_weight``, the ordinal head's per-threshold binary cross-entropy. The NT-Xent
    term is not part of it: it has its own pass and gradient (:func:`auxiliary_gradients`), and the
    collapse guard watches this loss alone, since NT-Xent can keep a total falling while the scores sit at
    the label prior (``docs/decisions/seed-design-parts.md``)."""
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
