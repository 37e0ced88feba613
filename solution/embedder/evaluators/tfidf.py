"""TF-IDF document vectors: the bag-of-words baseline for CPC classification and clustering.

Sublinear term frequencies, English stop words dropped, unigrams and bigrams, rows L2-normalised
(scikit-learn's ``TfidfVectorizer``): the usual strong lexical baseline an embedder has to beat on
these tasks. Fitted on the documents it encodes (the held-out patents); it sees no labels. The rows
are sparse; the classification and clustering evaluators take them as they take embeddings.

Example:
    >>> x = tfidf_vectors(["absorbent pad for pets", "absorbent pad with a layer", "engine piston ring"])
    >>> x.shape[0], round(float(x[0].multiply(x[0]).sum()), 6)
    (3, 1.0)
"""

from __future__ import annotations

# Terms in a single document are noise for a classifier of a few hundred patents, but a small sample
# would have almost no vocabulary left without them.
MIN_DOCS_FOR_MIN_DF = 50


def tfidf_vectors(texts: list[str]):
    """Sparse (len(texts), vocabulary) TF-IDF matrix of ``texts``."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    min_df = 2 if len(texts) >= MIN_DOCS_FOR_MIN_DF else 1
    return TfidfVectorizer(sublinear_tf=True, stop_words="english", ngram_range=(1, 2),
                           min_df=min_df).fit_transform(texts)
