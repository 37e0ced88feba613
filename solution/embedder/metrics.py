"""IR metrics with the definitions of BEIR (pytrec_eval) and sentence-transformers'
InformationRetrievalEvaluator, torch-free.

* ``ndcg@k``: DCG = sum over the top k of ``gain(d) / log2(rank + 1)`` (linear gains, as trec_eval);
  divided by the DCG of the ideal ordering of all judged documents, cut at k.
* ``mrr@k``: 1 / rank of the first relevant document within the top k, else 0.
* ``recall@k``: relevant documents in the top k / all relevant documents of the query.

Every metric is averaged over queries; a query with no relevant document is skipped (as BEIR does).

Example:
    >>> import numpy as np
    >>> scores = np.array([[0.9, 0.8, 0.1], [0.1, 0.2, 0.3]])
    >>> qrels = [{1: 1.0}, {2: 1.0}]
    >>> m = ir_metrics(scores, qrels, ks=(1, 10))
    >>> round(m["mrr@10"], 3), m["recall@1"]
    (0.75, 0.5)

Fusion (RRF, convex) is re-exported from :mod:`inference.retrieval.fusion`, where search uses it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from inference.retrieval.fusion import convex_scores, min_max, rrf_scores
from inference.retrieval.topk import top_k_indices

__all__ = ["convex_scores", "dcg", "ir_metrics", "min_max", "mrr_at_k", "ndcg_at_k", "recall_at_k", "rrf_scores",
           "top_k_indices"]


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain of gains in rank order.

    >>> round(dcg([1, 0, 1]), 4)   # 1/log2(2) + 1/log2(4)
    1.5
    """
    return float(sum(g / math.log2(i + 2) for i, g in enumerate(gains)))


def ndcg_at_k(ranked: Sequence, qrel: Mapping, k: int) -> float:
    """nDCG@k of one ranking; ``qrel`` maps relevant document -> gain (> 0).

    >>> round(ndcg_at_k(["b", "a"], {"a": 1}, 10), 4)    # the only relevant doc at rank 2
    0.6309
    """
    gains = [float(qrel.get(d, 0.0)) for d in list(ranked)[:k]]
    ideal = dcg(sorted((float(g) for g in qrel.values() if g > 0), reverse=True)[:k])
    return dcg(gains) / ideal if ideal > 0 else 0.0


def mrr_at_k(ranked: Sequence, qrel: Mapping, k: int) -> float:
    """Reciprocal rank of the first relevant document in the top k.

    >>> mrr_at_k(["x", "y", "a"], {"a": 1}, 10), mrr_at_k(["x", "y", "a"], {"a": 1}, 2)
    (0.3333333333333333, 0.0)
    """
    for rank, d in enumerate(list(ranked)[:k], start=1):
        if qrel.get(d, 0) > 0:
            return 1.0 / rank
    return 0.0


def recall_at_k(ranked: Sequence, qrel: Mapping, k: int) -> float:
    """Share of the relevant documents found in the top k.

    >>> recall_at_k(["a", "x", "b"], {"a": 1, "b": 1, "c": 1}, 2)
    0.3333333333333333
    """
    relevant = {d for d, g in qrel.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(list(ranked)[:k])) / len(relevant)


RECALL_KS = (1, 5, 10, 20, 50, 100)  # the recall@k curve of the evaluation and of report.png


def ir_metrics(scores: np.ndarray, qrels: Sequence[Mapping[int, float]], ks: Sequence[int] = RECALL_KS,
               ndcg_ks: Sequence[int] = (10,), mrr_ks: Sequence[int] = (10,)) -> dict[str, float]:
    """Mean ``ndcg@k``, ``mrr@k``, ``recall@k`` of a (queries x documents) score matrix.

    ``qrels[q]`` maps document column -> gain. Queries without a relevant document are skipped.
    """
    depth = max([*ks, *ndcg_ks, *mrr_ks])
    ranked = top_k_indices(scores, depth)
    sums: dict[str, float] = {}
    n = 0
    for q, qrel in enumerate(qrels):
        if not any(g > 0 for g in qrel.values()):
            continue
        n += 1
        row = ranked[q].tolist()
        for k in ndcg_ks:
            sums[f"ndcg@{k}"] = sums.get(f"ndcg@{k}", 0.0) + ndcg_at_k(row, qrel, k)
        for k in mrr_ks:
            sums[f"mrr@{k}"] = sums.get(f"mrr@{k}", 0.0) + mrr_at_k(row, qrel, k)
        for k in ks:
            sums[f"recall@{k}"] = sums.get(f"recall@{k}", 0.0) + recall_at_k(row, qrel, k)
    return {name: total / n for name, total in sums.items()} if n else {}
