"""Phrase retrieval on USPPPM: for each anchor + context, rank its candidate targets by cosine to the
anchor; nDCG@10 with graded gains = the human score (0 gains nothing).

Example:
    >>> import numpy as np
    >>> groups = [("stent", ["mesh tube", "apple"], [1.0, 0.0])]
    >>> vec = {"stent": [1, 0], "mesh tube": [0.9, 0.1], "apple": [0, 1]}
    >>> round(phrase_ndcg(groups, lambda ts: np.array([vec[t] for t in ts], dtype=float)), 3)
    1.0
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

from solution.embedder.metrics import ndcg_at_k

Group = tuple[str, list[str], list[float]]


def load_phrase_groups(path: str, max_groups: int = 300, seed: int = 0,
                       context_filter: Callable[[str], bool] | None = None) -> list[Group]:
    """Groups of (anchor, targets, scores) keyed by anchor + context; a fixed random sample, of the
    contexts ``context_filter`` keeps (e.g. one CPC section) when given."""
    from inference.io import read_pairs

    table = read_pairs(path, require_score=True)
    cols = table.columns
    groups: dict[tuple[str, str], tuple[list[str], list[float]]] = {}
    for a, t, c, s in zip(cols["anchor"], cols["target"], cols["context"], cols["score"]):
        if context_filter is not None and not context_filter(c):
            continue
        targets, scores = groups.setdefault((a, c), ([], []))
        targets.append(t)
        scores.append(s)
    keys = sorted(k for k, (_, s) in groups.items() if len(s) > 1 and max(s) > 0)
    random.Random(seed).shuffle(keys)
    return [(k[0], *groups[k]) for k in keys[:max_groups]]


def phrase_ndcg(groups: list[Group], encode: Callable[[list[str]], np.ndarray], k: int = 10) -> float:
    phrases = sorted({p for a, ts, _ in groups for p in [a, *ts]})
    vecs = encode(phrases)
    row = {p: i for i, p in enumerate(phrases)}
    total = 0.0
    for anchor, targets, scores in groups:
        sims = vecs[[row[t] for t in targets]] @ vecs[row[anchor]]
        order = np.argsort(-sims, kind="stable")
        total += ndcg_at_k(order.tolist(), {i: s for i, s in enumerate(scores) if s > 0}, k)
    return total / max(1, len(groups))
