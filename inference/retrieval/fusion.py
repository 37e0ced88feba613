"""Hybrid BM25 + dense ranking: reciprocal rank fusion and a convex combination of normalised scores.

Both work on full score vectors over the same documents (higher = better), so they need no shared
candidate list and compose with any retriever.

Example:
    >>> import numpy as np
    >>> bm25, dense = np.array([3.0, 2.0, 1.0]), np.array([0.1, 0.9, 0.5])
    >>> rrf_scores([bm25, dense]).argsort()[::-1].tolist()     # doc 1: ranks 2 and 1
    [1, 0, 2]
    >>> convex_scores(bm25, dense, alpha=0.5).round(3).tolist()
    [0.5, 0.75, 0.25]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RRF_K = 60  # the constant of Cormack et al. (2009); damps the weight of the very top ranks
# Weight of the dense scores in the convex fusion: chosen on one half of held-out splits' title queries and
# scored on the other, for the fine-tuned preset and zero-shot MiniLM alike (docs/decisions/hybrid-search-constants.md)
DEFAULT_ALPHA = 0.7


def ranks_of(scores: np.ndarray) -> np.ndarray:
    """1-based rank of each document (ties broken by document order, like a stable sort)."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks


def rrf_scores(score_lists: Sequence[np.ndarray], k: int = RRF_K, depth: int | None = None) -> np.ndarray:
    """Reciprocal rank fusion: ``sum_r 1 / (k + rank_r(d))``; ranks past ``depth`` contribute 0.

    >>> rrf_scores([np.array([2.0, 1.0])], k=60).round(5).tolist()
    [0.01639, 0.01613]
    """
    total = np.zeros(len(score_lists[0]), dtype=np.float64)
    for scores in score_lists:
        ranks = ranks_of(scores)
        contrib = 1.0 / (k + ranks)
        if depth is not None:
            contrib[ranks > depth] = 0.0
        total += contrib
    return total


def min_max(scores: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; a constant vector maps to zeros (it carries no ranking information)."""
    scores = np.asarray(scores, dtype=np.float64)
    lo, hi = scores.min(), scores.max()
    if hi - lo <= 1e-12:
        return np.zeros_like(scores)
    return (scores - lo) / (hi - lo)


def convex_scores(sparse: np.ndarray, dense: np.ndarray, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """``alpha * minmax(dense) + (1 - alpha) * minmax(sparse)``; alpha = 1 is dense only."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return alpha * min_max(dense) + (1.0 - alpha) * min_max(sparse)
