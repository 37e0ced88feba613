"""Tokenisation with the exported ``tokenizer.json`` (Rust ``tokenizers``, no transformers) and padding.

Training calls the Hugging Face fast tokenizer as ``tokenizer(texts, truncation=True, max_length=L)``;
that is this same Rust tokenizer with right-side truncation to ``L`` tokens, special tokens included,
so :class:`TextEncoder` produces the same ids (tests/test_inference.py checks it).

Example:
    >>> enc = TextEncoder.load("models/NAME/tokenizer.json", max_length=64, pad_id=0)   # doctest: +SKIP
    >>> batch = enc.encode(["abatement [SEP] act of abating [SEP] furniture"])            # doctest: +SKIP
    >>> batch.n_truncated, len(batch.ids[0]) <= 64                                         # doctest: +SKIP
    (0, True)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from inference.validate import check_texts


@dataclass
class EncodedTexts:
    """Unpadded token ids (and token type ids) per text, plus how many texts were cut at max_length."""

    ids: list[list[int]]
    type_ids: list[list[int]]
    n_truncated: int

    def lengths(self) -> list[int]:
        return [len(row) for row in self.ids]


@dataclass
class TextEncoder:
    tokenizer: Tokenizer
    max_length: int
    pad_id: int = 0

    @classmethod
    def load(cls, path: str | os.PathLike, max_length: int, pad_id: int = 0) -> TextEncoder:
        return cls.of(Tokenizer.from_file(str(path)), max_length, pad_id)

    @classmethod
    def of(cls, tokenizer: Tokenizer, max_length: int, pad_id: int = 0) -> TextEncoder:
        """From a copy of ``tokenizer`` (training passes its fast tokenizer's ``backend_tokenizer``)."""
        tokenizer = Tokenizer.from_str(tokenizer.to_str())
        # Set both explicitly: a tokenizer.json can carry its own truncation/padding settings, and
        # training uses exactly "truncate to max_length, no padding" (padding happens per batch).
        tokenizer.enable_truncation(max_length)
        tokenizer.no_padding()
        return cls(tokenizer, max_length, pad_id)

    def encode(self, texts: Sequence[str]) -> EncodedTexts:
        check_texts(texts)  # the tokenizer's own error for a lone surrogate is a bare TypeError
        encodings = self.tokenizer.encode_batch(list(texts))
        return EncodedTexts(
            ids=[e.ids for e in encodings],
            type_ids=[e.type_ids for e in encodings],
            n_truncated=sum(1 for e in encodings if e.overflowing),
        )


def pad_batch(rows: Sequence[Sequence[int]], pad: int) -> np.ndarray:
    """Right-pad int rows to the longest one: an int64 (rows, width) array (ONNX graphs take int64)."""
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), pad, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def length_buckets(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Row indices sorted by length and cut into batches: similar lengths share a batch, little padding.

    >>> length_buckets([5, 2, 9, 3], 2)
    [[1, 3], [0, 2]]
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
