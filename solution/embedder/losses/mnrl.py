"""Multiple-negatives ranking loss (InfoNCE): each query against its positive, the other rows'
positives (in-batch negatives) and any extra hard negatives.

``doc_ids`` masks in-batch "negatives" that are the same document as the row's positive (two
queries of one patent in a batch), which would otherwise be trained apart from a true match.
``symmetric`` adds the document -> query direction (used by section alignment, where both sides
are documents).

Example:
    >>> q = torch.eye(2); d = torch.eye(2)
    >>> float(mnrl_loss(q, d, scale=20.0)) < 1e-6
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mnrl_loss(queries: torch.Tensor, docs: torch.Tensor, hard_negatives: torch.Tensor | None = None,
              doc_ids: torch.Tensor | None = None, scale: float = 20.0, symmetric: bool = False) -> torch.Tensor:
    """``queries`` (B, d) and ``docs`` (B, d) unit vectors, row i a positive pair; negatives (M, d)."""
    q, d = queries.float(), docs.float()
    candidates = d if hard_negatives is None else torch.cat([d, hard_negatives.float()])
    logits = scale * q @ candidates.T  # (B, B + M)
    labels = torch.arange(len(q), device=q.device)
    if doc_ids is not None:
        same = doc_ids[:, None] == doc_ids[None, :]
        same &= ~torch.eye(len(q), dtype=torch.bool, device=q.device)
        logits[:, : len(q)] = logits[:, : len(q)].masked_fill(same, float("-inf"))
    loss = F.cross_entropy(logits, labels)
    if symmetric:
        back = scale * d @ q.T
        if doc_ids is not None:
            back = back.masked_fill(same, float("-inf"))
        loss = (loss + F.cross_entropy(back, labels)) / 2
    return loss
