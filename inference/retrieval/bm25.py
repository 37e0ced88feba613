"""BM25 over the corpus with ``bm25s`` (optional dependency), plus the tokeniser both sides share.

The tokeniser is ours, not bm25s's, so that the saved index and later queries split text the same way
whatever bm25s version loads it: lower-case word tokens of 2+ characters, English stop words dropped,
then (by default) the Snowball English stemmer from PyStemmer, so "coated"/"coating" and
"catheters"/"catheter" meet. The stemmer is saved with the index (``tokenizer.json``) and a loaded index
stems queries the same way; ``stemmer=None`` is the unstemmed variant.

Example:
    >>> bm25 = Bm25Index.build(["drug coated balloon catheter", "knee implant", "drug tablet"])
    >>> int(bm25.scores("balloon catheters").argmax())
    0
    >>> bm25.tokenize("Coating the catheters")
    ['coat', 'cathet']
"""

from __future__ import annotations

import json
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


# Term saturation: chosen on training patents' titles searching their own abstracts (0.6 and 0.3 tie, 1.5 is
# 0.015 lower) and better or level on every held-out task too (benchmarks/RESULTS.md "BM25: the k1 constant")
DEFAULT_K1 = 0.6
STEMMERS = ("english", None)  # Snowball English, or none
DEFAULT_STEMMER = "english"
TOKENIZER_FILE = "tokenizer.json"  # how the saved index split its text; queries are split the same way


def make_tokenizer(stemmer: str | None = DEFAULT_STEMMER):
    """``text -> tokens``: :func:`bm25_tokenize`, then the Snowball ``stemmer`` (None: no stemming)."""
    if stemmer not in STEMMERS:
        raise ValueError(f"stemmer {stemmer!r}: one of {', '.join(map(str, STEMMERS))}")
    if stemmer is None:
        return bm25_tokenize
    try:
        import Stemmer
    except ImportError as err:
        raise ImportError(f"BM25 with the {stemmer} stemmer needs PyStemmer: pip install PyStemmer "
                          "(or build the index with stemmer None: `--bm25-stemmer none`)") from err
    stem_words = Stemmer.Stemmer(stemmer).stemWords
    return lambda text: stem_words(bm25_tokenize(text))


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

    def __init__(self, retriever, n_docs: int, stemmer: str | None = DEFAULT_STEMMER):
        self.retriever = retriever
        self.n_docs = n_docs
        self.stemmer = stemmer
        self.tokenize = make_tokenizer(stemmer)

    @classmethod
    def build(cls, texts: list[str], k1: float = DEFAULT_K1, b: float = 0.75,
              stemmer: str | None = DEFAULT_STEMMER) -> Bm25Index:
        bm25s = _bm25s()
        tokenize = make_tokenizer(stemmer)
        retriever = bm25s.BM25(k1=k1, b=b)
        retriever.index([tokenize(t) for t in texts], show_progress=False)
        return cls(retriever, len(texts), stemmer)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (zeros when no query word is indexed)."""
        tokens = [t for t in self.tokenize(query) if t in self.retriever.vocab_dict]
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
        (Path(folder) / TOKENIZER_FILE).write_text(json.dumps({"stemmer": self.stemmer, "stopwords": "project"}) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> Bm25Index:
        """The saved state, tokenising queries as the build did (a state saved before the stemmer was
        recorded is unstemmed: that is how those builds tokenised)."""
        bm25s = _bm25s()
        spec = Path(folder) / TOKENIZER_FILE
        stemmer = json.loads(spec.read_text())["stemmer"] if spec.is_file() else None
        if stemmer not in STEMMERS:
            raise ValueError(f"{spec}: stemmer {stemmer!r} is not one this version knows ({STEMMERS})")
        retriever = bm25s.BM25.load(str(folder), show_progress=False)
        return cls(retriever, int((Path(folder) / "n_docs.txt").read_text()), stemmer)
