"""Torch-free patent retrieval: exported embedder + index + ranker (numpy, tokenizers, onnxruntime).

Example:
    >>> from inference.retrieval import PatentRanker
    >>> PatentRanker.load("indexes/NAME").search("drug-coated balloon catheter", k=10)   # doctest: +SKIP
"""

from inference.retrieval.ranker import PatentRanker

__all__ = ["PatentRanker"]
