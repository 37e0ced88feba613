"""Smooth K2 loss: ``k * (|p - y| - thr)^2`` where ``|p - y| >= thr``, else 0.

A dead zone of width ``thr`` around the label, quadratic outside it. Labels sit 0.25 apart, so
``thr = 0.25`` forgives any error below one level; smaller values keep a gradient that ranks
within a level (what Pearson rewards). ``benchmarks/phrase_ablation.py`` measures the choices.

Example:
    >>> smooth_k2_loss(torch.tensor([0.5, 0.9]), torch.tensor([0.5, 0.5]), k=4.0, thr=0.25)
    tensor(0.0450)
"""

from __future__ import annotations

import torch


def smooth_k2_loss(pred: torch.Tensor, target: torch.Tensor, k: float = 4.0, thr: float = 0.25) -> torch.Tensor:
    excess = (pred.float() - target.float()).abs() - thr
    return (k * excess.clamp_min(0.0).pow(2)).mean()
