"""BM25 over the corpus with ``bm25s`` (optional dependency), plus the tokeniser both sides share.

The tokeniser is ours, not bm25s's, so that the saved index and later queries split text the same way
whatever bm25s version loads it: lower-case word tokens of 2+ characters, English stop words dropped,
then (by default) the Snowball English stemmer from PyStemmer, so "coated"/"coating" and
"catheters"/"catheter" meet. Each pair of neighbouring tokens is indexed too, as one more token
("balloon cathet"), and a query's pairs count at ``pair_weight`` (0.35) of its words: a title's phrases
then weigh beyond its words (docs/decisions/hybrid-search-constants.md). The
stemmer and the pair weight are saved with the index (``tokenizer.json``) and a loaded index splits and
weighs queries the same way; ``stemmer=None`` and ``pair_weight=0`` (words only) are the variants.

Example:
    >>> bm25 = Bm25Index.build(["drug coated balloon catheter", "knee implant", "drug tablet"])
    >>> int(bm25.scores("balloon catheters").argmax())
    0
    >>> bm25.tokenize("Coating the catheters")
    ['coat', 'cathet']
    >>> word_pairs(bm25.tokenize("drug-coated balloon"))
    ['drug coat', 'coat balloon']
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


# Term saturation: chosen on training patents' titles searching their own abstracts, and better or level on the
# held-out tasks too (docs/decisions/hybrid-search-constants.md)
DEFAULT_K1 = 0.6
# Length normalisation: chosen on training patents' titles, checked on held-out ones
# (docs/decisions/hybrid-search-constants.md)
DEFAULT_B = 0.75
STEMMERS = ("english", None)  # Snowball English, or none
DEFAULT_STEMMER = "english"
# a query's word pairs against its words: chosen on training patents' titles searching their own abstracts
# (benchmarks/bm25_k1.py --sweep pair_weight; docs/decisions/hybrid-search-constants.md)
DEFAULT_PAIR_WEIGHT = 0.35
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


def word_pairs(tokens: list[str]) -> list[str]:
    """Each pair of neighbouring tokens as one token; the space keeps it apart from every word token."""
    return [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]


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

    def __init__(self, retriever, n_docs: int, stemmer: str | None = DEFAULT_STEMMER,
                 pair_weight: float = DEFAULT_PAIR_WEIGHT):
        self.retriever = retriever
        self.n_docs = n_docs
        self.stemmer = stemmer
        self.pair_weight = pair_weight
        self.tokenize = make_tokenizer(stemmer)

    @classmethod
    def build(cls, texts: list[str], k1: float = DEFAULT_K1, b: float = DEFAULT_B, stemmer: str | None = DEFAULT_STEMMER,
              pair_weight: float = DEFAULT_PAIR_WEIGHT) -> Bm25Index:
        """The index of ``texts``: their words, and their word pairs unless ``pair_weight`` is 0."""
        if not pair_weight >= 0:
            raise ValueError(f"pair_weight must be 0 or more, got {pair_weight}")
        bm25s = _bm25s()
        tokenize = make_tokenizer(stemmer)
        retriever = bm25s.BM25(k1=k1, b=b)
        tokens = [tokenize(t) for t in texts]
        retriever.index([t + word_pairs(t) for t in tokens] if pair_weight else tokens, show_progress=False)
        return cls(retriever, len(texts), stemmer, pair_weight)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query``: its words', plus ``pair_weight`` x its word pairs'
        (zeros when nothing of it is indexed)."""
        words = self.tokenize(query)
        total = self._scores(words)
        if self.pair_weight:
            total = total + self.pair_weight * self._scores(word_pairs(words))  # not in place: bm25s's array
        return total

    def _scores(self, tokens: list[str]) -> np.ndarray:
        tokens = [t for t in tokens if t in self.retriever.vocab_dict]
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
        (Path(folder) / TOKENIZER_FILE).write_text(
            json.dumps({"stemmer": self.stemmer, "pair_weight": self.pair_weight, "stopwords": "project"}) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> Bm25Index:
        """The saved state, splitting and weighing queries as the build did (a state saved before the
        stemmer or the pairs were recorded has neither: that is how those builds tokenised)."""
        bm25s = _bm25s()
        spec = Path(folder) / TOKENIZER_FILE
        saved = json.loads(spec.read_text()) if spec.is_file() else {}
        stemmer, pair_weight = saved.get("stemmer"), saved.get("pair_weight", 0.0)
        if stemmer not in STEMMERS:
            raise ValueError(f"{spec}: stemmer {stemmer!r} is not one this version knows ({STEMMERS})")
        if isinstance(pair_weight, bool) or not isinstance(pair_weight, (int, float)) or not pair_weight >= 0:
            raise ValueError(f"{spec}: pair_weight {pair_weight!r} is not a number of 0 or more")
        retriever = bm25s.BM25.load(str(folder), show_progress=False)
        return cls(retriever, int((Path(folder) / "n_docs.txt").read_text()), stemmer, pair_weight)
