"""The ``multi`` input layout: every target of one anchor+context scored in one sequence.

    [CLS] anchor [SEP] class title [SEP] t1 [SEP] t2 [SEP] ... tn [SEP]
    span ids:  0 ...      0 ...          1..1 0  2..2 0       n..n 0

Each target's score comes from pooling its own tokens (span id k = the k-th target of the sequence,
0 = not a target), so every target sees the anchor, the context and its siblings (the top USPPPM
solutions' grouping trick) at the cost of one ~100-token sequence per group instead of one
sequence per pair.

A group longer than ``max_targets`` targets or ``max_length`` tokens is split into chunks. Training
shuffles each group, redraws its chunks every epoch and sometimes cuts smaller chunks (down to one
target) so a lone pair at prediction time is in-distribution; prediction chunks each group in
fixed orders of its own (:func:`sibling_arrangement`), whatever the file's row order. Every row
lands in exactly one chunk (checked). Torch-free: training, ``solution.predict`` and the exported
scorer all build their inputs here.

Example:
    >>> groups = anchor_groups(["a", "b", "a"], ["A47", "A47", "A47"])
    >>> groups
    [[0, 2], [1]]
    >>> chunk_group([0, 2, 5], target_costs=[3, 3, 3], budget=7, max_targets=32)
    [[0, 2], [5]]
    >>> spans_and_ids(cls_id=101, sep_id=102, prefix=[[7], [8, 9]], targets=[[4], [5, 6]])
    ([101, 7, 102, 8, 9, 102, 4, 102, 5, 6, 102], [0, 0, 0, 0, 0, 0, 1, 0, 2, 2, 0])
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

MIN_LENGTH = 8  # the shortest max_length that leaves room for an anchor, a title and a target


def anchor_groups(anchors: Sequence[str], contexts: Sequence[str]) -> list[list[int]]:
    """Row indices of each anchor+context group, groups in order of first appearance, rows in file order."""
    members: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(anchors, contexts)):
        members.setdefault(key, []).append(i)
    return list(members.values())


def sibling_arrangement(anchors: Sequence[str], targets: Sequence[str], contexts: Sequence[str],
                        keys: Sequence[str] | None = None, order: int = 0) -> list[list[int]]:
    """Each anchor+context group's rows in sibling order ``order``, for scoring: order 0 sorts a group by
    target text (ties by ``keys``, the row ids); order k >= 1 shuffles that with a seed made of k and
    the group's own anchor and context. So which siblings share a row's sequence, and where, depends on
    its group alone: never on the file's row order or on the other groups (training shuffles instead).

    >>> sibling_arrangement(["a", "b", "a", "a"], ["z", "q", "x", "y"], ["A47"] * 4)
    [[2, 3, 0], [1]]
    >>> targets = ["x", "y", "z"]
    >>> shuffled = sibling_arrangement(["a"] * 3, targets, ["A47"] * 3, order=1)[0]
    >>> reversed_file = sibling_arrangement(["a"] * 3, targets[::-1], ["A47"] * 3, order=1)[0]
    >>> [targets[r] for r in shuffled] == [targets[::-1][r] for r in reversed_file]  # the same sibling order
    True
    """
    keys = keys if keys is not None else [""] * len(targets)
    arranged = []
    for rows in anchor_groups(anchors, contexts):
        rows = sorted(rows, key=lambda r: (targets[r], keys[r]))
        if order:  # a str seed is hashed with SHA-512: the same on every run and machine
            random.Random(f"{order}\0{anchors[rows[0]]}\0{contexts[rows[0]]}").shuffle(rows)
        arranged.append(rows)
    return arranged


def chunk_group(rows: Sequence[int], target_costs: Sequence[int], budget: int, max_targets: int,
                rng: random.Random | None = None, small_chunk_prob: float = 0.0) -> list[list[int]]:
    """Split one group's ``rows`` into chunks of at most ``max_targets`` rows and ``budget`` tokens.

    ``target_costs[i]`` is the token cost of row ``rows[i]`` (its tokens plus its separator). Without
    ``rng`` the rows keep their order and chunks are filled greedily. With ``rng`` (training) the rows
    are shuffled and, with probability ``small_chunk_prob`` per chunk, the chunk is capped at a random
    size from 1 to ``max_targets``. A row costing more than ``budget`` on its own still gets a chunk (the
    caller cuts its tokens), so no row is ever dropped.
    """
    if max_targets < 1 or budget < 1:
        raise ValueError(f"max_targets ({max_targets}) and the token budget ({budget}) must be positive")
    order = list(range(len(rows)))
    if rng is not None:
        rng.shuffle(order)
    chunks: list[list[int]] = []
    current: list[int] = []
    used, cap = 0, max_targets
    for i in order:
        if current and (len(current) >= cap or used + target_costs[i] > budget):
            chunks.append(current)
            current, used = [], 0
        if not current:
            small = rng is not None and small_chunk_prob > 0 and rng.random() < small_chunk_prob
            cap = rng.randint(1, max_targets) if small else max_targets
        current.append(rows[i])
        used += target_costs[i]
    if current:
        chunks.append(current)
    return chunks


def spans_and_ids(cls_id: int, sep_id: int, prefix: Sequence[Sequence[int]],
                  targets: Sequence[Sequence[int]]) -> tuple[list[int], list[int]]:
    """Token ids and span ids of ``[CLS] p1 [SEP] p2 [SEP] ... t1 [SEP] t2 [SEP] ...``."""
    ids, spans = [cls_id], [0]
    for part in prefix:
        ids += [*part, sep_id]
        spans += [0] * (len(part) + 1)
    for k, part in enumerate(targets, start=1):
        ids += [*part, sep_id]
        spans += [k] * len(part) + [0]
    return ids, spans


@dataclass
class MultiChunk:
    """One model sequence: its tokens, the span id of each token, and the table rows of its targets."""

    ids: list[int]
    spans: list[int]
    rows: list[int]  # table row of target slot k+1, k = 0..n-1
    group: int  # index of the anchor+context group


@dataclass
class MultiEncoder:
    """Builds :class:`MultiChunk` sequences from a table's anchor, target, title columns.

    ``encode_pieces`` maps strings to token ids without special tokens (a ``tokenizers.Tokenizer``
    through :meth:`from_tokenizer`); each distinct string is encoded once.
    """

    encode_pieces: object  # Callable[[list[str]], list[list[int]]]
    cls_id: int
    sep_id: int
    max_length: int
    max_targets: int = 32
    use_title: bool = True
    unk_id: int | None = None  # stands in for a phrase with no tokens (e.g. only control characters)

    def __post_init__(self) -> None:
        if self.max_length < MIN_LENGTH or self.max_targets < 1:
            raise ValueError(f"multi layout: max_length must be >= {MIN_LENGTH} (got {self.max_length}) and "
                             f"max_targets >= 1 (got {self.max_targets})")

    @classmethod
    def from_tokenizer(cls, tokenizer, cls_token: str, sep_token: str, **kwargs) -> MultiEncoder:
        """From a Rust ``tokenizers.Tokenizer`` (a transformers fast tokenizer's ``backend_tokenizer``)."""
        def encode_pieces(texts: list[str]) -> list[list[int]]:
            return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]

        ids = {token: tokenizer.token_to_id(token) for token in (cls_token, sep_token)}
        missing = [token for token, i in ids.items() if i is None]
        if missing:
            raise ValueError(f"the tokenizer has no id for {missing}; pass its own CLS and SEP tokens")
        unk = getattr(tokenizer.model, "unk_token", None)
        unk_id = tokenizer.token_to_id(unk) if unk else None
        return cls(encode_pieces, ids[cls_token], ids[sep_token], unk_id=unk_id, **kwargs)

    def _token_table(self, texts: Sequence[str]) -> dict[str, list[int]]:
        unique = sorted(set(texts))
        return dict(zip(unique, self.encode_pieces(unique)))

    def _fill_empty(self, tokens: dict[str, list[int]], phrases: Sequence[str]) -> None:
        """A phrase that tokenizes to nothing (only control characters, say) would leave its slot without
        a token to pool: it gets the unknown token instead, with one warning naming a few."""
        empty = sorted({p for p in phrases if not tokens[p]})
        if not empty:
            return
        stand_in = [self.unk_id] if self.unk_id is not None else self.encode_pieces(["?"])[0]
        log.warning("%d phrase(s) have no tokens (e.g. %s) and are scored as the unknown token", len(empty),
                    ", ".join(repr(p) for p in empty[:3]))
        for phrase in empty:
            tokens[phrase] = stand_in

    def encode(self, anchors: Sequence[str], targets: Sequence[str], contexts: Sequence[str], titles: Sequence[str],
               rng: random.Random | None = None, small_chunk_prob: float = 0.0,
               groups: list[list[int]] | None = None) -> tuple[list[MultiChunk], int]:
        """(chunks, number of targets whose tokens were cut to fit ``max_length``). Every row is in one chunk.
        ``groups``: each group's rows in the order to chunk them (:func:`sibling_arrangement`; default: file
        order); with ``rng`` (training) groups and rows are shuffled instead."""
        tokens = self._token_table([*anchors, *targets, *(titles if self.use_title else [])])
        self._fill_empty(tokens, [*anchors, *targets])
        groups = anchor_groups(anchors, contexts) if groups is None else groups
        if rng is not None:
            rng.shuffle(groups)
        chunks: list[MultiChunk] = []
        n_cut = 0
        for g, rows in enumerate(groups):
            first = rows[0]
            # the prefix may take at most half the sequence; long anchors and titles are cut first
            half = max(1, (self.max_length - 2) // 2)
            prefix = [tokens[anchors[first]][:half]]
            if self.use_title:
                prefix.append(tokens[titles[first]][: max(0, half - len(prefix[0]) - 1)])
            budget = self.max_length - sum(len(p) + 1 for p in prefix) - 1  # the CLS
            limit = budget - 1  # tokens of one target alone (its separator takes the last place)
            costs = [min(len(tokens[targets[r]]), limit) + 1 for r in rows]
            for chunk_rows in chunk_group(rows, costs, budget, self.max_targets, rng, small_chunk_prob):
                target_ids = [tokens[targets[r]][:limit] for r in chunk_rows]
                n_cut += sum(len(tokens[targets[r]]) > limit for r in chunk_rows)
                ids, spans = spans_and_ids(self.cls_id, self.sep_id, prefix, target_ids)
                chunks.append(MultiChunk(ids, spans, chunk_rows, g))
        check_coverage(chunks, len(anchors))
        return chunks, n_cut


def check_coverage(chunks: Sequence[MultiChunk], n_rows: int) -> None:
    """Every row in exactly one chunk, and every target slot holds at least one token."""
    seen = [0] * n_rows
    for chunk in chunks:
        for r in chunk.rows:
            seen[r] += 1
        present = set(chunk.spans)
        lost = [k for k in range(1, len(chunk.rows) + 1) if k not in present]
        if lost:
            raise RuntimeError(f"rows {[chunk.rows[k - 1] for k in lost]} lost their tokens in the multi layout")
    bad = [i for i, n in enumerate(seen) if n != 1]
    if bad:
        raise RuntimeError(f"multi layout: rows {bad[:10]} are in {[seen[i] for i in bad[:10]]} chunks instead of 1")
