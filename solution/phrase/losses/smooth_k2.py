"""Smooth K2 loss (Zhang & Li, EMNLP 2024, arXiv 2406.05326), measured in label steps as in the paper.

    loss = k * max(0, |p - y| / step - thr) ** 2

A dead zone of ``thr`` label steps around the label, quadratic outside it. The paper sets ``thr = 0.25``
and ``k = 2`` on labels one unit apart (code: ``ZBWpro/STS-Regression``); USPPPM's labels sit
``step = 0.25`` apart on the [0, 1] scale, so the same dead zone is 0.0625 there. Given in score units,
``thr = 0.25`` would forgive any error under a whole label step: a constant at the label prior (~0.36)
then costs nothing on the 0.25 and 0.5 rows (65% of train), a flat basin that held the seed design at
the prior.

Example:
    >>> smooth_k2_loss(torch.tensor([0.5, 0.75]), torch.tensor([0.5, 0.5]))   # 1 step off: 2 * 0.75**2 / 2
    tensor(0.5625)
    >>> smooth_k2_loss(torch.tensor([0.36]), torch.tensor([0.25])) > 0   # the prior on an inner level
    tensor(True)
"""

from __future__ import annotations

import torch

LABEL_STEP = 0.25  # USPPPM scores 0, .25, .5, .75, 1


def smooth_k2_loss(pred: torch.Tensor, target: torch.Tensor, k: float = 2.0, thr: float = 0.25,
                   step: float = LABEL_STEP) -> torch.Tensor:
    excess = (pred.float() - target.float()).abs() / step - thr
    return (k * excess.clamp_min(0.0).pow(2)).mean()
