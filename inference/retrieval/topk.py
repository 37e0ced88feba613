"""The k best documents per query: one selection for search, BM25 and the evaluation metrics.

Example:
    >>> top_k_indices(np.array([[0.1, 0.9, 0.5, 0.9]]), 3).tolist()    # best first, ties: lower index first
    [[1, 3, 2]]
    >>> top_k_indices(np.array([0.3, 0.2]), 5).tolist()                # k past the end: every document
    [0, 1]
"""

from __future__ import annotations

import numpy as np


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, best first (ties: lower index first); row-wise for a 2-D array."""
    scores = np.asarray(scores)
    if scores.ndim == 1:
        return top_k_indices(scores[None, :], k)[0]
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    out = np.empty_like(part)
    for i, row in enumerate(part):
        out[i] = row[np.lexsort((row, -scores[i, row]))]
    return out
