"""NT-Xent (normalised temperature-scaled cross entropy) between bare anchor and target phrases.

The vectors come from their own encoder pass over each phrase alone (``[CLS] phrase [SEP]`` through
the same backbone, adapters and CPC fusion, mean-pooled and projected: :meth:`PhraseMatcher.phrase_vectors`),
never from spans of the cross-encoded scoring sequence. In that sequence the anchor, the title and every
target attend to each other, so an anchor span and a target span of the same sequence could be told from
other sequences' by a signature of the sequence alone: the loss was solved by sequence identity (the
seed design's total loss fell 0.24 -> 0.10 while validation Pearson stayed at 0.11). A vector of a bare
phrase holds only that phrase and its context.

Rows: one vector per anchor+context group of the batch (``anchor_vec``, G of them: an anchor counts once,
however many targets it has) and one per scored target (``target_vec``, N), with the index of its group
(``target_group``) and its label.

* Positives: a target scored ``>= positive_min_score`` (0.75: close synonyms or the same concept) and its
  own anchor.
* Negatives, anchor -> targets: the targets of the other groups (in-batch negatives) and the targets of the
  same anchor scored ``<= hard_max_score`` (0.25: hard negatives; they share the context, so only the
  phrases' meaning separates them); the anchor's other targets in between, or close matches themselves,
  are masked out.
* Negatives, target -> anchors: the anchors of the other groups, each once.
* Another group with the same anchor text (the same anchor under another context) is neither a positive
  nor a negative: its targets may be close matches too (``anchor_key`` says which groups share a text).

The loss is symmetric (anchor -> targets and target -> anchors), averaged over the positives; 0 when the
batch has none.

Example:
    >>> anchors, targets = torch.eye(3), torch.eye(3)[[0, 1, 2, 0]]
    >>> group, label = torch.tensor([0, 1, 2, 0]), torch.tensor([1.0, 0.75, 1.0, 1.0])
    >>> float(nt_xent_loss(anchors, targets, group, label, torch.arange(3), tau=0.05)) < 1e-3
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent_loss(
    anchor_vec: torch.Tensor,
    target_vec: torch.Tensor,
    target_group: torch.Tensor,
    target_score: torch.Tensor,
    anchor_key: torch.Tensor,
    tau: float = 0.1,
    positive_min_score: float = 0.75,
    hard_max_score: float = 0.25,
) -> torch.Tensor:
    anchor = F.normalize(anchor_vec.float(), dim=-1)
    target = F.normalize(target_vec.float(), dim=-1)
    sim = anchor @ target.T / tau  # (G, N): anchor g against every target
    positive = target_score >= positive_min_score
    if not bool(positive.any()):
        return (anchor_vec.sum() + target_vec.sum()) * 0.0  # zero, but still part of the graph
    groups = torch.arange(len(anchor), device=sim.device)
    own = target_group[None, :] == groups[:, None]  # (G, N): target n is anchor g's own
    same_text = anchor_key[:, None] == anchor_key[None, :]  # (G, G), True on the diagonal
    other_same_text = same_text[:, target_group] & ~own  # (G, N): another group of the same anchor text
    hard = own & (target_score <= hard_max_score)[None, :]
    pos = positive.nonzero().squeeze(1)  # (P,) the positive targets
    owner = target_group[pos]  # (P,) their anchors
    # anchor -> targets, one row per positive: itself, other groups' targets and its anchor's hard negatives
    allowed = (~own & ~other_same_text)[owner] | hard[owner]
    allowed[torch.arange(len(pos)), pos] = True
    a2t = F.cross_entropy(sim[owner].masked_fill(~allowed, float("-inf")), pos)
    # target -> anchors: its own anchor and the anchors of other texts, each once
    allowed_anchors = ~same_text[owner]
    allowed_anchors[torch.arange(len(pos)), owner] = True
    t2a = F.cross_entropy(sim.T[pos].masked_fill(~allowed_anchors, float("-inf")), owner)
    return (a2t + t2a) / 2
