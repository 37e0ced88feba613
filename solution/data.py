"""USPPPM data: validated loading, CPC ids, grouped folds, model inputs and length-bucketed batches.

The text template and the CPC vocabulary live in ``inference/`` (no torch) so that training and
the exported scorer build byte-identical inputs.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from inference.cpc import CpcVocab, encode_contexts
from inference.io import PairTable, read_pairs
from inference.template import InputTemplate, group_other_targets

log = logging.getLogger(__name__)


@dataclass
class EncodedPairs:
    """One table turned into model inputs (the text is rebuilt each epoch when targets are shuffled)."""

    table: PairTable
    section_ids: list[int]
    class_ids: list[int]
    titles: list[str]
    group_ids: list[int]  # anchor+context group of each row (NT-Xent false-negative mask)

    def subset_encoded(self, indices: list[int]) -> EncodedPairs:
        pick = lambda values: [values[i] for i in indices]  # noqa: E731
        return EncodedPairs(self.table.subset(indices), pick(self.section_ids), pick(self.class_ids), pick(self.titles),
                            pick(self.group_ids))

    def texts(self, template: InputTemplate, rng: random.Random | None = None) -> list[str]:
        cols = self.table.columns
        groups = group_other_targets(cols["anchor"], cols["target"], cols["context"], rng)
        return template.build_all(cols["anchor"], cols["target"], self.titles, groups)


def encode_table(table: PairTable, vocab: CpcVocab) -> EncodedPairs:
    """CPC ids and titles for every row; unknown classes fall back to their section (one warning)."""
    sections, classes, titles = encode_contexts(table, vocab, log)
    keys: dict[tuple[str, str], int] = {}
    group_ids = [keys.setdefault(k, len(keys)) for k in zip(table.columns["anchor"], table.columns["context"])]
    return EncodedPairs(table, sections, classes, titles, group_ids)


def load_uspppm(data_dir: str | Path) -> tuple[PairTable, PairTable, CpcVocab]:
    """(train with scores, test, CPC vocabulary) from ``DIR/uspppm/*.csv`` and ``DIR/cpc/*.csv``."""
    data_dir = Path(data_dir)
    train = read_pairs(data_dir / "uspppm" / "train.csv", require_score=True)
    test = read_pairs(data_dir / "uspppm" / "test.csv")
    vocab = CpcVocab.from_data_dir(data_dir / "cpc")
    return train, test, vocab


def make_folds(table: PairTable, n_splits: int, seed: int) -> np.ndarray:
    """Fold of each row: grouped by anchor (test anchors never occur in train), stratified by score."""
    from sklearn.model_selection import StratifiedGroupKFold

    levels = np.round(np.asarray(table.columns["score"]) * 4).astype(int)
    anchors = np.asarray(table.columns["anchor"])
    folds = np.full(len(table), -1)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for fold, (_, val_idx) in enumerate(splitter.split(np.zeros(len(levels)), levels, anchors)):
        folds[val_idx] = fold
    return folds


def tokenize(tokenizer, texts: list[str], max_length: int) -> list[dict[str, list[int]]]:
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    return [{k: enc[k][i] for k in keys} for i in range(len(texts))]


def length_bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random | None,
                            bucket_batches: int = 50) -> list[list[int]]:
    """Batches of similar-length rows: little padding, still random order when ``rng`` is given.

    Training shuffles, sorts within windows of ``bucket_batches`` batches, cuts, and shuffles the
    batches; evaluation (no rng) sorts everything by length.
    """
    order = list(range(len(lengths)))
    if rng is None:
        order.sort(key=lambda i: lengths[i])
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(order)
    window = batch_size * bucket_batches
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(features: list[dict], encoded: EncodedPairs, indices: list[int], pad_id: int,
            scores: list[float] | None = None) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest row (dynamic padding)."""
    width = max(len(features[i]["input_ids"]) for i in indices)
    batch: dict[str, torch.Tensor] = {}
    for key in features[indices[0]]:
        fill = pad_id if key == "input_ids" else 0
        batch[key] = torch.tensor([features[i][key] + [fill] * (width - len(features[i][key])) for i in indices])
    batch["section_ids"] = torch.tensor([encoded.section_ids[i] for i in indices])
    batch["class_ids"] = torch.tensor([encoded.class_ids[i] for i in indices])
    batch["group_ids"] = torch.tensor([encoded.group_ids[i] for i in indices])
    if scores is not None:
        batch["scores"] = torch.tensor([scores[i] for i in indices], dtype=torch.float32)
    return batch
