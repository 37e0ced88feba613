"""CORAL-style ordinal loss: a binary cross-entropy on each threshold logit of the ordinal head.

The ordinal head gives four logits, ``logit_k = f(x) + b_k``, one per question "is the label above
level k?" (levels 0, .25, .5, .75, 1). Supervising only the expected score ``0.25 * sum_k
sigmoid(logit_k)`` leaves the thresholds free to drift as long as their sum fits; CORAL (Cao et al.,
2020) trains each one as the binary classifier it stands for, so every row teaches every threshold.

Example:
    >>> logits = torch.tensor([[9.0, 9.0, -9.0, -9.0]])   # sure the label is above 0 and .25, not above .5
    >>> float(coral_loss(logits, torch.tensor([0.5]))) < 1e-3
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def coral_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of ``logits`` (N, K) against ``target > k / K`` for k = 0..K-1."""
    levels = torch.arange(logits.shape[-1], device=logits.device, dtype=torch.float32) / logits.shape[-1]
    above = (target.float()[:, None] > levels + 1e-6).float()
    return F.binary_cross_entropy_with_logits(logits.float(), above)
