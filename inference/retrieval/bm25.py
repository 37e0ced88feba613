"""BM25 over the corpus with ``bm25s`` (optional dependency), plus the tokeniser both sides share.

The tokeniser is ours, not bm25s's, so that the saved index and later queries split text the same way
whatever bm25s version loads it: lower-case word tokens of 2+ characters, English stop words dropped.

Example:
    >>> bm25 = Bm25Index.build(["drug coated balloon catheter", "knee implant", "drug tablet"])
    >>> int(bm25.scores("balloon catheter").argmax())
    0
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from inference.retrieval.topk import top_k_indices

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both but by
can could did do does doing down during each few for from further had has have having he her here hers herself him
himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or other
our ours ourselves out over own same she should so some such than that the their theirs them themselves then there
these they this those through to too under until up very was we were what when where which while who whom why will
with would you your yours yourself yourselves thereof wherein whereby said
""".split())


def bm25_tokenize(text: str) -> list[str]:
    """Lower-case word tokens without stop words.

    >>> bm25_tokenize("The Drug-coated balloon of a catheter")
    ['drug', 'coated', 'balloon', 'catheter']
    """
    return [t for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS]


def _bm25s():
    try:
        import bm25s
    except ImportError as err:
        raise ImportError("BM25 (hybrid search, baselines) needs the bm25s package: pip install bm25s") from err
    import logging

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG
    return bm25s


class Bm25Index:
    """A thin wrapper: build from texts, score a query against every document, save and load."""

    def __init__(self, retriever, n_docs: int):
        self.retriever = retriever
        self.n_docs = n_docs

    @classmethod
    def build(cls, texts: list[str], k1: float = 1.5, b: float = 0.75) -> Bm25Index:
        bm25s = _bm25s()
        retriever = bm25s.BM25(k1=k1, b=b)
        # create_empty_token keeps docs with no token indexable (they simply score 0)
        retriever.index([bm25_tokenize(t) for t in texts], show_progress=False)
        return cls(retriever, len(texts))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (zeros when no query word is indexed)."""
        tokens = [t for t in bm25_tokenize(query) if t in self.retriever.vocab_dict]
        if not tokens:
            return np.zeros(self.n_docs, dtype=np.float32)
        return np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)[: self.n_docs]

    def top_k(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(document indices, scores) of the ``k`` best, best first."""
        scores = self.scores(query)
        idx = top_k_indices(scores, k)
        return idx, scores[idx]

    def save(self, folder: str | Path) -> None:
        self.retriever.save(str(folder), show_progress=False)
        (Path(folder) / "n_docs.txt").write_text(f"{self.n_docs}\n")

    @classmethod
    def load(cls, folder: str | Path) -> Bm25Index:
        bm25s = _bm25s()
        retriever = bm25s.BM25.load(str(folder), show_progress=False)
        return cls(retriever, int((Path(folder) / "n_docs.txt").read_text()))
