"""USPPPM data: validated loading, grouped folds, length-bucketed batches and tensors.

The inputs themselves (template, layout, CPC ids, tokens) are built by ``inference/phrase/inputs.py`` (no
torch), so training and the exported scorer build identical inputs.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch

from inference.backend.tokens import TextEncoder
from inference.cpc import CpcVocab
from inference.io import PairTable, read_pairs
from inference.phrase.inputs import PhraseInputs, Preprocessor
from inference.template import InputTemplate

log = logging.getLogger(__name__)


def model_input_names(model, layout: str) -> list[str]:
    """The inputs a :class:`~solution.phrase.model.PhraseMatcher` takes in this layout (the ONNX graph's too)."""
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if model.uses_token_type_ids else [])
    return names + (["span_ids"] if layout == "multi" else []) + ["section_ids", "class_ids"]


def preprocessor(tokenizer, template: InputTemplate, vocab: CpcVocab, max_length: int) -> Preprocessor:
    """The inference package's :class:`Preprocessor` over a transformers fast tokenizer (same ids as its tokenizer.json)."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Preprocessor(template, vocab, TextEncoder.of(tokenizer.backend_tokenizer, max_length, pad_id))


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
    n_groups = len(set(table.columns["anchor"]))
    if n_groups < n_splits:
        from solution.config import ConfigError

        raise ConfigError(f"{table.path}: {n_groups} anchor(s), fewer than n_splits={n_splits} (folds are grouped by "
                          f"anchor); use --set n_splits={max(2, n_groups)} or more rows")
    folds = np.full(len(table), -1)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for fold, (_, val_idx) in enumerate(splitter.split(np.zeros(len(levels)), levels, anchors)):
        folds[val_idx] = fold
    return folds


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


def collate(inputs: PhraseInputs, indices: list[int], pad_id: int, names: list[str],
            scores: list[float] | None = None) -> dict[str, torch.Tensor]:
    """Tensors of sequences ``indices``, padded to the longest (dynamic padding); with ``scores`` also the
    (B, T) labels of their target slots and the mask of real slots."""
    batch = {k: torch.from_numpy(v) for k, v in inputs.feeds(indices, pad_id, names).items()}
    batch["group_ids"] = torch.tensor([inputs.group_ids[i] for i in indices])
    if scores is not None:
        values, mask = inputs.slot_values(indices, scores)
        batch["scores"], batch["target_mask"] = torch.from_numpy(values), torch.from_numpy(mask)
    return batch
