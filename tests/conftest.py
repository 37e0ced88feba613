"""Shared fixtures: a tiny random BERT with a word-list tokenizer, and a small real-data folder."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


def _rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Path:
    """data/ with ~200 training rows of whole anchors (all five score levels), the real test set and CPC titles."""
    root = tmp_path_factory.mktemp("data")
    train = _rows(DATA / "uspppm" / "train.csv")
    anchors: list[str] = []
    for row in train:
        if row["anchor"] not in anchors:
            anchors.append(row["anchor"])
    chosen = anchors[::40][:12]
    subset = [r for r in train if r["anchor"] in chosen][:200]
    write_csv(root / "uspppm" / "train.csv", subset, ["id", "anchor", "target", "context", "score"])
    shutil.copy(DATA / "uspppm" / "test.csv", root / "uspppm" / "test.csv")
    shutil.copytree(DATA / "cpc", root / "cpc")
    return root


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, small_data) -> Path:
    """A 2-layer BERT with random weights and a WordPiece vocabulary made from the data's words."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words: set[str] = set()
    for name in ("train.csv", "test.csv"):
        for row in _rows(small_data / "uspppm" / name):
            words.update(re.findall(r"\w+|[^\w\s]", f"{row['anchor']} {row['target']}".lower()))
    for row in _rows(small_data / "cpc" / "uspppm_context_titles.csv"):
        words.update(re.findall(r"\w+|[^\w\s]", row["class_title"].lower()))
    for row in _rows(small_data / "cpc" / "ipc_section_class_subclass_titles.csv"):
        if row["level"] == "section":
            words.update(re.findall(r"\w+|[^\w\s]", row["title"].lower()))
    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ";"] + sorted(words - {";"})
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(folder)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture()
def tiny_config(tiny_model, small_data, tmp_path):
    """A TrainConfig for a seconds-long run of the tiny model."""
    from solution.config import TrainConfig

    def make(**overrides):
        values = dict(model=str(tiny_model), data=str(small_data), out=str(tmp_path / "run"),
                      submission=str(tmp_path / "submission.csv"), epochs=2, budget_minutes=5, n_splits=3,
                      device="cpu", precision="fp32", batch_size=16, eval_batch_size=32, max_length=48, log_every=2,
                      # every part of the design, whatever the measured defaults switch off
                      head="ordinal", loss="smooth_k2", cpc_fusion=True, contrastive_weight=0.3, use_title=True,
                      group_targets=True, lora=True)
        values.update(overrides)
        return TrainConfig(**values)

    return make
