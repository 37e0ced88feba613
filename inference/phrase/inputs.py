"""Model inputs of a phrase-pair table, in either layout, for training and inference alike (no torch).

* ``pair``: one sequence per row, ``anchor [SEP] target [SEP] title [SEP] other targets`` (the parts
  after the target as the template says), tokenised with truncation to ``max_length``.
* ``multi``: one sequence per chunk of an anchor+context group, every target in it scored at once
  (``inference/phrase/multi.py``).

Both give :class:`PhraseInputs`: unpadded sequences plus, for each, the table rows its target slots
score. Training (``solution/``), the parity gate (``export/``) and :class:`inference.PhraseScorer`
all build inputs with :class:`Preprocessor`, so they are the same by construction.

Example:
    >>> inputs = PhraseInputs(ids=[[1, 5, 2, 6, 2, 7, 2]], type_ids=[[0] * 7], spans=[[0, 0, 0, 1, 0, 2, 0]],
    ...                       rows=[[1, 0]], section_ids=[3], class_ids=[4], group_ids=[0])
    >>> scores = np.zeros(2, dtype=np.float32)
    >>> inputs.scatter([0], np.array([[0.25, 0.75, 0.0, 0.0, 0.0, 0.0, 0.0]]), scores)
    >>> scores.tolist()
    [0.75, 0.25]
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from inference.backend.tokens import TextEncoder, length_buckets, pad_batch
from inference.cpc import CpcVocab, encode_contexts
from inference.io import PairTable
from inference.phrase.multi import MultiEncoder, anchor_groups, sibling_arrangement
from inference.template import InputTemplate, group_other_targets

log = logging.getLogger(__name__)


@dataclass
class PhraseInputs:
    """Unpadded model sequences of a table and the table rows each one scores (padding happens per batch).

    ``rows[i]`` lists the rows of sequence ``i``'s target slots in order: one row in the pair layout,
    up to ``max_targets`` in the multi layout, where ``spans[i]`` marks each slot's tokens (k = slot k-1).
    """

    ids: list[list[int]]
    type_ids: list[list[int]]
    spans: list[list[int]] | None
    rows: list[list[int]]
    section_ids: list[int]
    class_ids: list[int]
    group_ids: list[int]  # anchor+context group of each sequence (NT-Xent false-negative mask)
    n_truncated: int = 0

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_rows(self) -> int:
        return sum(len(r) for r in self.rows)

    def feeds(self, idx: Sequence[int], pad_id: int, names: Iterable[str]) -> dict[str, np.ndarray]:
        """Padded int64 arrays of sequences ``idx`` for the graph inputs ``names``."""
        names = set(names)
        feeds = {"input_ids": pad_batch([self.ids[i] for i in idx], pad_id),
                 "attention_mask": pad_batch([[1] * len(self.ids[i]) for i in idx], 0),
                 "section_ids": np.asarray([self.section_ids[i] for i in idx], dtype=np.int64),
                 "class_ids": np.asarray([self.class_ids[i] for i in idx], dtype=np.int64)}
        if "token_type_ids" in names:
            feeds["token_type_ids"] = pad_batch([self.type_ids[i] for i in idx], 0)
        if "span_ids" in names and self.spans is not None:
            feeds["span_ids"] = pad_batch([self.spans[i] for i in idx], 0)
        return {k: v for k, v in feeds.items() if k in names}

    def batches(self, batch_size: int, pad_id: int, names: Iterable[str]) -> Iterable[tuple[list[int], dict]]:
        """(sequence indices, feeds) per length bucket; ``names`` are the graph's inputs."""
        names = list(names)
        for idx in length_buckets([len(r) for r in self.ids], batch_size):
            yield idx, self.feeds(idx, pad_id, names)

    def slot_values(self, idx: Sequence[int], values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """(B, T) float32 ``values[row]`` of each slot of sequences ``idx`` and the (B, T) mask of real slots."""
        width = max(len(self.rows[i]) for i in idx)
        out = np.zeros((len(idx), width), dtype=np.float32)
        mask = np.zeros((len(idx), width), dtype=bool)
        for b, i in enumerate(idx):
            out[b, : len(self.rows[i])] = [values[r] for r in self.rows[i]]
            mask[b, : len(self.rows[i])] = True
        return out, mask

    def scatter(self, idx: Sequence[int], scores: np.ndarray, into: np.ndarray) -> None:
        """Write a batch's scores, (B,) per sequence or (B, T) per slot, into row order ``into``."""
        scores = scores.reshape(len(idx), -1)
        for b, i in enumerate(idx):
            into[self.rows[i]] = scores[b, : len(self.rows[i])]


@dataclass
class TableContexts:
    """What a table's context codes give the model, worked out once per table (one unknown-class warning)."""

    section_ids: list[int]
    class_ids: list[int]
    titles: list[str]

    @classmethod
    def of(cls, table: PairTable, vocab: CpcVocab, logger: logging.Logger | None = None) -> TableContexts:
        """``logger``: where the unknown-class warning goes (default this module's)."""
        return cls(*encode_contexts(table, vocab, logger or log))

    def subset(self, indices: Sequence[int]) -> TableContexts:
        return TableContexts(*([values[i] for i in indices] for values in (self.section_ids, self.class_ids, self.titles)))


@dataclass
class Preprocessor:
    """Table -> :class:`PhraseInputs` in the template's layout (training, export and inference share it)."""

    template: InputTemplate
    vocab: CpcVocab
    encoder: TextEncoder

    def __post_init__(self) -> None:
        self.multi = None
        if self.template.layout == "multi":
            self.multi = MultiEncoder.from_tokenizer(
                self.encoder.tokenizer, self.template.cls_token, self.template.sep_token,
                max_length=self.encoder.max_length, max_targets=self.template.max_targets,
                use_title=self.template.use_title)
        elif self.template.layout != "pair":
            raise ValueError(f"input layout {self.template.layout!r}: expected 'pair' or 'multi'")

    def pair_texts(self, table: PairTable, titles: list[str], rng: random.Random | None = None,
                   order: int = 0) -> list[str]:
        """Pair-layout texts; the other targets in sibling order ``order`` (:meth:`build_orders`), or
        shuffled per row with ``rng`` (training)."""
        cols = table.columns
        if self.template.group_targets:
            arranged = None if rng is not None else self.arrangement(table, order)
            groups = group_other_targets(cols["anchor"], cols["target"], cols["context"], rng,
                                         limit=self.encoder.max_length, arranged=arranged)
        else:  # not built at all: a group's lists grow with the square of its size
            groups = [[] for _ in range(len(table))]
        return self.template.build_all(cols["anchor"], cols["target"], titles, groups)

    @property
    def has_siblings(self) -> bool:
        """Whether a row's input holds the other targets of its anchor+context (so their order matters)."""
        return self.multi is not None or self.template.group_targets

    @staticmethod
    def arrangement(table: PairTable, order: int) -> list[list[int]]:
        """Each anchor+context group's rows in sibling order ``order`` (:func:`sibling_arrangement`)."""
        cols = table.columns
        return sibling_arrangement(cols["anchor"], cols["target"], cols["context"], cols.get("id"), order)

    def build_orders(self, table: PairTable, contexts: TableContexts, orders: int) -> list[PhraseInputs]:
        """The inputs in ``orders`` orders of each row's siblings: each anchor+context group sorted by target
        text first, then that shuffled (and re-chunked) with seeds made of 1, 2, ... and the group's own
        text, so a row's inputs depend on its group alone, never on the file's order or the other groups.
        Averaging a row's scores over them is test-time augmentation: a target's score moves a little with
        which siblings share its sequence, and where (docs/phrase-matcher.md, "sibling orders"). Bare pairs have no
        siblings: one order."""
        if orders < 1:
            raise ValueError(f"orders must be >= 1, got {orders}")
        orders = orders if self.has_siblings else 1
        return [self.build(table, contexts, order=k, warn=k == 0) for k in range(orders)]

    def build(self, table: PairTable, contexts: TableContexts, rng: random.Random | None = None,
              small_chunk_prob: float = 0.0, warn: bool = True, order: int = 0) -> PhraseInputs:
        """The inputs; ``rng`` (training) shuffles groups and, in the multi layout, redraws the chunks;
        without it each group's siblings are in sibling order ``order`` (:meth:`build_orders`).
        ``warn``: log the count of cut inputs (once per table, not once per sibling order)."""
        cols = table.columns
        group_of = np.zeros(len(table), dtype=np.int64)
        for g, rows in enumerate(anchor_groups(cols["anchor"], cols["context"])):
            group_of[rows] = g
        if self.multi is not None:
            arranged = None if rng is not None else self.arrangement(table, order)
            chunks, n_cut = self.multi.encode(cols["anchor"], cols["target"], cols["context"], contexts.titles, rng,
                                              small_chunk_prob, arranged)
            if n_cut and warn:
                log.warning("%s: %d of %d target(s) are longer than the room max_length=%d leaves beside the anchor "
                            "and title, and were cut", table.path, n_cut, len(table), self.encoder.max_length)
            firsts = [c.rows[0] for c in chunks]
            return PhraseInputs([c.ids for c in chunks], [[0] * len(c.ids) for c in chunks], [c.spans for c in chunks],
                                [c.rows for c in chunks], [contexts.section_ids[r] for r in firsts],
                                [contexts.class_ids[r] for r in firsts], [int(group_of[r]) for r in firsts], n_cut)
        encoded = self.encoder.encode(self.pair_texts(table, contexts.titles, rng, order))
        if encoded.n_truncated and warn:
            log.warning("%s: %d of %d input(s) are longer than max_length=%d tokens and were truncated (their "
                        "end, the grouped other targets, is cut; training did the same)", table.path,
                        encoded.n_truncated, len(table), self.encoder.max_length)
        return PhraseInputs(encoded.ids, encoded.type_ids, None, [[i] for i in range(len(table))],
                            contexts.section_ids, contexts.class_ids, group_of.tolist(), encoded.n_truncated)

    def __call__(self, table: PairTable) -> PhraseInputs:
        return self.build(table, TableContexts.of(table, self.vocab))
