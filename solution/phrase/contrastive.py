"""The NT-Xent term's inputs: each batch's anchors and targets as bare phrases, and its weight over training.

The loss itself and why its vectors come from bare phrases: ``solution/phrase/losses/nt_xent.py``.
:class:`PhraseBank` tokenises every phrase of the training table once per fold; :func:`contrastive_batch`
picks a batch's rows: one anchor per anchor+context group, and the targets that take part (positives,
scored >= ``positive_min_score``, and the hard negatives, scored <= ``hard_max_score``; the rows in
between are neither, so they are not encoded), at most ``max_targets`` of them: positives first, then
hard negatives drawn at random: uncapped, a batch of full groups encodes about as many tokens as the
scoring pass, and NT-Xent would multiply the step time (docs/decisions/seed-design-parts.md). Anchors
and targets go through one forward pass.

Example:
    >>> contrastive_weight(0.3, progress=0.15, ramp=0.3), contrastive_weight(0.3, progress=0.5, ramp=0.3)
    (0.15, 0.3)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from inference.backend.tokens import TextEncoder, pad_batch

PHRASE_MAX_TOKENS = 32  # USPPPM phrases are 1-5 words; a cut keeps a long one's start


@dataclass
class PhraseBank:
    """Token ids of each row's anchor and target, each alone (``[CLS] phrase [SEP]``), and the index of
    each row's anchor text (groups sharing it are the same anchor under other contexts)."""

    anchor_ids: list[list[int]]
    target_ids: list[list[int]]
    anchor_key: list[int]
    pad_id: int

    @classmethod
    def of(cls, anchors: list[str], targets: list[str], encoder: TextEncoder) -> PhraseBank:
        short = TextEncoder.of(encoder.tokenizer, PHRASE_MAX_TOKENS, encoder.pad_id)
        texts = sorted(set(anchors) | set(targets))
        key = {text: i for i, text in enumerate(texts)}
        ids = short.encode(texts).ids
        return cls([ids[key[a]] for a in anchors], [ids[key[t]] for t in targets], [key[a] for a in anchors],
                   encoder.pad_id)


def contrastive_batch(bank: PhraseBank, rows_of_sequences: list[list[int]], group_of_sequences: list[int],
                      scores: list[float], section_ids: torch.Tensor, class_ids: torch.Tensor,
                      positive_min_score: float, hard_max_score: float, max_targets: int = 0,
                      seed: int = 0) -> dict[str, torch.Tensor] | None:
    """The NT-Xent inputs of one batch of multi-layout sequences (their rows and anchor+context groups), or
    None when it holds no positive (no pass is run then). ``section_ids``/``class_ids`` are the sequences'
    (after context dropout: the bare phrases see what the scoring pass saw). Returns the padded phrases,
    anchors first (``n_anchors`` of them), and ``target_group``, ``target_score``, ``anchor_key``.
    ``max_targets`` > 0 caps the targets (positives first, then hard negatives drawn by ``seed``: pass the
    step, so a resumed run draws the same)."""
    group_index: dict[int, int] = {}  # anchor+context group -> its index among the batch's anchors
    anchor_sequences, target_rows, target_group = [], [], []
    for b, (rows, group) in enumerate(zip(rows_of_sequences, group_of_sequences)):
        if group not in group_index:
            group_index[group] = len(anchor_sequences)
            anchor_sequences.append(b)
        for r in rows:
            if scores[r] >= positive_min_score or scores[r] <= hard_max_score:
                target_rows.append(r)
                target_group.append(group_index[group])
    if max_targets and len(target_rows) > max_targets:
        order = torch.randperm(len(target_rows), generator=torch.Generator().manual_seed(seed)).tolist()
        order.sort(key=lambda j: scores[target_rows[j]] < positive_min_score)  # stable: positives first
        keep = sorted(order[:max_targets])
        target_rows, target_group = [target_rows[j] for j in keep], [target_group[j] for j in keep]
    target_score = torch.tensor([scores[r] for r in target_rows], dtype=torch.float32)
    if not bool((target_score >= positive_min_score).any()):
        return None
    anchor_rows = [rows_of_sequences[b][0] for b in anchor_sequences]
    ids = [bank.anchor_ids[r] for r in anchor_rows] + [bank.target_ids[r] for r in target_rows]
    input_ids = torch.from_numpy(pad_batch(ids, bank.pad_id))
    lengths = torch.tensor([len(row) for row in ids])
    target_group_t = torch.tensor(target_group, dtype=torch.long)
    contexts = torch.tensor(anchor_sequences, dtype=torch.long)[torch.cat([torch.arange(len(anchor_rows)), target_group_t])]
    contexts = contexts.to(section_ids.device)
    return {"input_ids": input_ids, "attention_mask": (torch.arange(input_ids.shape[1]) < lengths[:, None]).long(),
            "section_ids": section_ids[contexts], "class_ids": class_ids[contexts], "n_anchors": len(anchor_rows),
            "target_group": target_group_t, "target_score": target_score,
            "anchor_key": torch.tensor([bank.anchor_key[r] for r in anchor_rows])}


def contrastive_weight(weight: float, progress: float, ramp: float) -> float:
    """The NT-Xent weight at training ``progress`` in [0, 1]: from 0 up to ``weight`` over the first ``ramp``
    of training, so the scoring loss leaves the label prior before the auxiliary term pulls on the weights."""
    return weight if ramp <= 0 else weight * min(1.0, progress / ramp)


def add_auxiliary_gradient(params: list[torch.Tensor], aux_grads: list[torch.Tensor | None],
                           max_ratio: float) -> tuple[float, float]:
    """Add ``aux_grads`` (the weighted NT-Xent term's gradient of ``params``) to their ``.grad`` (the scoring
    loss's), scaled down where needed so that on the weights both reach its norm is at most ``max_ratio``
    times the scoring gradient's: Adam normalises each weight's step, so an unbounded auxiliary term
    would steer the shared weights whatever its lambda. Returns (the ratio before scaling, the scale).

    >>> w = torch.zeros(2, requires_grad=True); w.grad = torch.tensor([3.0, 4.0])   # scoring: norm 5
    >>> add_auxiliary_gradient([w], [torch.tensor([0.0, 10.0])], max_ratio=0.5), w.grad.tolist()
    ((2.0, 0.25), [3.0, 6.5])
    """
    shared = [(p.grad, g) for p, g in zip(params, aux_grads) if p.grad is not None and g is not None]
    score_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(s.float()) for s, _ in shared])) \
        if shared else torch.tensor(0.0)
    aux_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for _, g in shared])) \
        if shared else torch.tensor(0.0)
    ratio = float(aux_norm / score_norm) if float(score_norm) > 0 else (0.0 if float(aux_norm) == 0 else float("inf"))
    scale = 1.0 if ratio <= max_ratio else max_ratio / ratio
    for p, g in zip(params, aux_grads):
        if g is None:
            continue
        if p.grad is None:
            p.grad = g * scale
        else:
            p.grad.add_(g.to(p.grad.dtype), alpha=scale)
    return ratio, scale
