"""Torch-free inference: ``PhraseScorer`` for exported phrase matchers (numpy, tokenizers, onnxruntime).

Training imports ``inference.io``/``cpc``/``template`` too, so this package's ``__init__`` stays
light: ``PhraseScorer`` (and onnxruntime with it) is imported on first use.

Example:
    >>> from inference import PhraseScorer                     # doctest: +SKIP
    >>> PhraseScorer.load("models/NAME").score([("abatement", "abatement of pollution", "A47")])  # doctest: +SKIP
    array([0.52], dtype=float32)
"""

from __future__ import annotations

__all__ = ["PatentRanker", "PhraseScorer"]


def __getattr__(name: str):
    if name == "PhraseScorer":
        from inference.phrase.scorer import PhraseScorer

        return PhraseScorer
    if name == "PatentRanker":
        from inference.retrieval.ranker import PatentRanker

        return PatentRanker
    raise AttributeError(f"module 'inference' has no attribute {name!r}")
