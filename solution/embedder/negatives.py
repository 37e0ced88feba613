"""BM25-mined hard negatives: highly ranked documents that are *not* relevant to the query.

Every positive of the query is excluded, not only the one the pair was built from (a patent can be
relevant to several queries, and the same title can appear twice), so a mined negative never
contradicts a label. Denoising, for the unlabelled positives BM25 ranks highest: ``skip_top`` skips
the first hits, and with the documents' texts ``max_overlap`` skips near-duplicates of a positive
(a continuation or a sibling filing with almost the same words is a false negative, not a hard one).

Example:
    >>> from inference.retrieval.bm25 import Bm25Index
    >>> docs = ["balloon catheter", "drug balloon catheter", "knee implant", "drug tablet"]
    >>> bm25 = Bm25Index.build(docs)
    >>> mine_hard_negatives(bm25, ["drug balloon catheter"], [{1}], top_k=3, per_query=2)
    [[0, 3]]
    >>> mine_hard_negatives(bm25, ["drug balloon catheter"], [{1}], top_k=3, per_query=2, docs=docs, max_overlap=0.6)
    [[3]]
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from inference.retrieval.bm25 import bm25_tokenize


def mine_hard_negatives(bm25, queries: Sequence[str], positives: Sequence[set[int]], top_k: int = 30,
                        per_query: int = 1, skip_top: int = 0, seed: int | None = None,
                        docs: Sequence[str] | None = None, max_overlap: float = 1.0) -> list[list[int]]:
    """For each query up to ``per_query`` document indices from BM25's ``top_k``, never a positive.

    ``skip_top`` ignores the first non-positive hits (often unlabelled near-duplicates: false
    negatives); with ``docs`` (the indexed texts) a hit whose word set overlaps a positive's by a
    Jaccard of ``max_overlap`` or more is skipped as a near-duplicate (1.0: none is). With ``seed``
    the negatives are sampled from the candidates, else the best are taken. Documents with a zero
    BM25 score share no word with the query and are not "hard": dropped.
    """
    rng = random.Random(seed) if seed is not None else None
    words = [word_set(d) for d in docs] if docs is not None and max_overlap < 1.0 else None
    mined: list[list[int]] = []
    for query, pos in zip(queries, positives):
        idx, scores = bm25.top_k(query, top_k + len(pos))
        candidates = [int(i) for i, s in zip(idx, scores) if int(i) not in pos and s > 0]
        if words is not None:
            candidates = [c for c in candidates if max((jaccard(words[c], words[p]) for p in pos), default=0.0)
                          < max_overlap]
        candidates = candidates[skip_top:top_k]
        if rng is not None and len(candidates) > per_query:
            candidates = sorted(rng.sample(candidates, per_query), key=candidates.index)
        mined.append(candidates[:per_query])
    return mined


def fill_random_negatives(mined: list[list[int]], positives: Sequence[set[int]], n_docs: int, per_query: int,
                          seed: int) -> list[list[int]]:
    """Top up queries that BM25 gave too few negatives with random non-positive documents."""
    rng = np.random.default_rng(seed)
    out = []
    for negs, pos in zip(mined, positives):
        negs = list(negs)
        while len(negs) < per_query and n_docs > len(pos) + len(negs):
            d = int(rng.integers(n_docs))
            if d not in pos and d not in negs:
                negs.append(d)
        out.append(negs)
    return out


def word_set(text: str) -> set[str]:
    """The words near-duplicate detection compares: BM25's tokens (lower case, no stop words), unstemmed."""
    return set(bm25_tokenize(text))


def jaccard(a: set[str], b: set[str]) -> float:
    """Word-set overlap: |a & b| / |a | b| (two empty sets count as the same text).

    >>> jaccard({"drug", "balloon", "catheter"}, {"balloon", "catheter"})
    0.6666666666666666
    """
    return len(a & b) / len(a | b) if a or b else 1.0
