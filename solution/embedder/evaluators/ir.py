"""Known-item retrieval on held-out patents, dense / BM25 / hybrid, with BEIR-style metrics.

Example:
    >>> import numpy as np
    >>> docs = ["drug coated balloon", "knee implant", "tooth brush"]
    >>> onehot = lambda texts: np.eye(3, dtype=np.float32)[[docs.index(t) if t in docs else 0 for t in texts]]
    >>> task = RetrievalTask("toy", ["drug coated balloon", "knee implant"], docs, [{0: 1.0}, {1: 1.0}])
    >>> round(evaluate_task(task, {"dense": onehot})["dense"]["ndcg@10"], 3)
    1.0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from inference.retrieval.bm25 import Bm25Index
from inference.retrieval.fusion import DEFAULT_ALPHA, convex_scores, rrf_scores
from solution.embedder.metrics import ir_metrics

Encode = Callable[[list[str]], np.ndarray]


@dataclass
class RetrievalTask:
    name: str
    queries: list[str]
    corpus: list[str]
    qrels: list[dict[int, float]]


def bm25_matrix(task: RetrievalTask, **options) -> np.ndarray:
    """BM25 scores of every query of ``task`` against its corpus (``options``: Bm25Index.build's)."""
    bm25 = Bm25Index.build(task.corpus, **options)
    return np.stack([bm25.scores(q) for q in task.queries]) if task.queries else np.zeros((0, len(task.corpus)))


def evaluate_task(task: RetrievalTask, dense: dict[str, tuple[Encode, Encode] | Encode], bm25: bool = False,
                  hybrid_of: str | None = None, alpha: float = DEFAULT_ALPHA) -> dict[str, dict[str, float]]:
    """Metrics per system. ``dense`` maps name -> encode (or (query encode, doc encode)); ``bm25``
    adds BM25; ``hybrid_of`` names the dense system fused with BM25 (RRF k=60 and convex ``alpha``)."""
    results: dict[str, dict[str, float]] = {}
    matrices: dict[str, np.ndarray] = {}
    for name, enc in dense.items():
        enc_q, enc_d = enc if isinstance(enc, tuple) else (enc, enc)
        matrices[name] = enc_q(task.queries) @ enc_d(task.corpus).T
        results[name] = ir_metrics(matrices[name], task.qrels)
    if bm25 or hybrid_of:
        sparse = bm25_matrix(task)
        if bm25:
            results["bm25"] = ir_metrics(sparse, task.qrels)
        if hybrid_of:
            d = matrices[hybrid_of]
            rrf = np.stack([rrf_scores([s, x]) for s, x in zip(sparse, d)])
            convex = np.stack([convex_scores(s, x, alpha) for s, x in zip(sparse, d)])
            results[f"hybrid-rrf({hybrid_of})"] = ir_metrics(rrf, task.qrels)
            results[f"hybrid-convex({hybrid_of})"] = ir_metrics(convex, task.qrels)
    return results
