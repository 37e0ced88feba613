"""Supervised contrastive loss (Khosla et al., 2020) on CPC subclass labels.

Two patents are positives when they share at least one subclass (patents carry several). For each
anchor with a positive in the batch: ``-mean_p log softmax_a(sim(i, a) / tau)[p]`` over the other rows
``a``; anchors without a positive are skipped.

Example:
    >>> z = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), dim=-1)
    >>> labels = torch.tensor([[1, 0], [1, 0], [0, 1]], dtype=torch.bool)
    >>> float(supcon_loss(z, labels, tau=0.1)) < 0.01
    True
"""

from __future__ import annotations

import torch


def supcon_loss(embeddings: torch.Tensor, labels: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """``embeddings`` (B, d) unit vectors; ``labels`` (B, C) multi-hot booleans."""
    z = embeddings.float()
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    labels = labels.float()
    positive = ((labels @ labels.T) > 0) & ~eye
    logits = (z @ z.T / tau).masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    has_pos = positive.any(dim=1)
    if not bool(has_pos.any()):
        return z.sum() * 0.0  # no positive pair: zero, still in the graph
    per_anchor = -(log_prob.masked_fill(~positive, 0.0).sum(1) / positive.sum(1).clamp_min(1))
    return per_anchor[has_pos].mean()
