"""NT-Xent (normalised temperature-scaled cross entropy) between anchor and target span vectors.

Each row is one scored pair: in the multi layout, one target slot paired with its own sequence's
anchor span (``solution.phrase.train.batch_loss`` flattens the real slots of a batch into rows).

Positives: the anchor span and the target span *of the same row* when the pair is scored a close
match (``score >= positive_min_score``, 0.75 by default: close synonyms or the same phrase). Those
two spans denote the same concept, so their intermediate representations should agree; pairs
scored lower are not asked to agree.

Negatives: the targets of the other rows in the batch (in-batch negatives), except rows that share
the anchor+context group, whose targets may well be close matches too (false negatives).

The loss is symmetric (anchor->targets and target->anchors), averaged over the positive rows;
0 when the batch has none.

Example:
    >>> a = torch.eye(3); t = torch.eye(3)
    >>> float(nt_xent_loss(a, t, torch.tensor([1.0, 1.0, 0.0]), torch.tensor([0, 1, 2]), tau=0.1)) < 1e-3
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent_loss(
    anchor_vec: torch.Tensor,
    target_vec: torch.Tensor,
    scores: torch.Tensor,
    group_ids: torch.Tensor,
    tau: float = 0.1,
    positive_min_score: float = 0.75,
) -> torch.Tensor:
    anchor = F.normalize(anchor_vec.float(), dim=-1)
    target = F.normalize(target_vec.float(), dim=-1)
    sim = anchor @ target.T / tau  # (B, B): row i = anchor i against every target
    same_group = group_ids[:, None] == group_ids[None, :]
    eye = torch.eye(len(sim), dtype=torch.bool, device=sim.device)
    sim = sim.masked_fill(same_group & ~eye, float("-inf"))
    positive = scores >= positive_min_score
    if not bool(positive.any()):
        return (anchor_vec.sum() + target_vec.sum()) * 0.0  # zero, but still part of the graph (DDP)
    labels = torch.arange(len(sim), device=sim.device)
    a2t = F.cross_entropy(sim[positive], labels[positive])
    t2a = F.cross_entropy(sim.T[positive], labels[positive])
    return (a2t + t2a) / 2
