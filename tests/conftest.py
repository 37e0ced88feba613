"""Shared fixtures: a tiny random BERT with a word-list tokenizer, and a small real-data folder."""

from __future__ import annotations

import csv
import os
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"

# The fuzz harness's profiles (tests/test_fuzz.py): "ci", a fixed draw of a few dozen examples per target,
# and "long" (benchmarks/fuzz_long.py), FUZZ_EXAMPLES random ones. The deadline bounds each example's time
# (a hang or a quadratic blow-up fails), far above the ~1 s a model-folder example takes.
_FUZZ = dict(deadline=60_000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=40, derandomize=True, **_FUZZ)
settings.register_profile("long", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "20000")), **_FUZZ)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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


@pytest.fixture(autouse=True)
def onnxruntime_only_by_default(monkeypatch, tmp_path_factory):
    """Every test starts with the runtime probe's cache in a fresh folder (never the user's ~/.cache)
    and with OpenVINO's bf16 (the only engine that races onnxruntime) hidden, so which runtime a test gets does not depend on the
    machine's speed; tests of the runtime choice put it back (tests/test_runtime.py)."""
    from inference.backend import openvino_runner

    monkeypatch.setenv("PATENT_SIM_CACHE", str(tmp_path_factory.mktemp("runtime-cache")))
    monkeypatch.setattr(openvino_runner, "cpu_precisions",
                        lambda: {"fp32"} if openvino_runner.openvino_installed() else set())


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
    # from_pretrained (not the constructor) reads vocab.txt the same way on transformers 4.57 and 5.x
    tokenizer = BertTokenizerFast.from_pretrained(folder, do_lower_case=True)
    tokenizer.save_pretrained(folder)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture()
def tiny_config(tiny_model, small_data, tmp_path):
    """A PhraseTrainConfig for a seconds-long run of the tiny model."""
    from solution.phrase.config import PhraseTrainConfig

    def make(**overrides):
        values = dict(model=str(tiny_model), data=str(small_data), out=str(tmp_path / "run"),
                      submission=str(tmp_path / "submission.csv"), epochs=2, budget_minutes=5, n_splits=3, folds=2,
                      ema_decay=0.0,  # the tests of the other parts were written without the weight average
                      device="cpu", precision="fp32", batch_size=16, eval_batch_size=32, max_length=48, log_every=2,
                      # every part of the design, whatever the measured defaults switch off
                      head="ordinal", loss="smooth_k2", cpc_fusion=True, contrastive_weight=0.3, use_title=True,
                      group_targets=True, lora=True,
                      restart_below=-1)  # a tiny model's first epoch may well be near chance
        values.update(overrides)
        return PhraseTrainConfig(**values)

    return make


def make_phrase_model(tiny_model: Path, **overrides):
    """(PhraseMatcher on the tiny BERT, its tokenizer), seeded: the same weights on every call."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from solution.phrase.model import ModelConfig, PhraseMatcher

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    config = ModelConfig(backbone=str(tiny_model), num_classes=8, sep_token_id=tokenizer.sep_token_id,
                         cls_token_id=tokenizer.cls_token_id, **overrides)
    torch.manual_seed(0)
    return PhraseMatcher(config, AutoModel.from_pretrained(tiny_model)), tokenizer


@pytest.fixture(scope="session")
def phrase_exported(tmp_path_factory, tiny_model: Path, small_data: Path) -> tuple[Path, Path]:
    """(run folder, model folder): a 2-fold tiny phrase run exported with the defaults, once per session."""
    from export.__main__ import main as export_main
    from solution.phrase.config import PhraseTrainConfig
    from solution.phrase.train import run

    base = tmp_path_factory.mktemp("phrase-export")
    run_dir, model_dir = base / "run", base / "model"
    cfg = PhraseTrainConfig(model=str(tiny_model), data=str(small_data), out=str(run_dir),
                            submission=str(base / "submission.csv"), epochs=1, budget_minutes=5, n_splits=3, folds=2,
                            device="cpu", precision="fp32", batch_size=16, eval_batch_size=32, max_length=48,
                            cpc_fusion=True, group_targets=True, use_title=True)  # the fusion must survive export
    run(cfg)
    assert export_main(["--run", str(run_dir), "--out", str(model_dir)]) == 0
    return run_dir, model_dir


EMBEDDER_COLUMNS = ["patent_id", "patent_title", "patent_abstract", "cpc_subclasses"]


@pytest.fixture(scope="session")
def patent_corpus(tmp_path_factory) -> Path:
    """The first 60 vendored A61 patents as a corpus CSV."""
    rows = _rows(ROOT / "data" / "patents" / "a61_patents.csv")[:60]
    return write_csv(tmp_path_factory.mktemp("corpus") / "patents.csv", rows, EMBEDDER_COLUMNS)


@pytest.fixture(scope="session")
def embedder_run(tmp_path_factory, tiny_model, patent_corpus):
    """(run folder, config, metrics) of a 2-epoch combined-recipe embedder run of the tiny model, with all
    three terms (the default combined recipe has no CPC term) and LoRA dropout on."""
    from solution.embedder.config import EmbedderTrainConfig
    from solution.embedder.train import run

    out = tmp_path_factory.mktemp("runs") / "combined"
    cfg = EmbedderTrainConfig(corpus=str(patent_corpus), recipe="combined", model=str(tiny_model), out=str(out),
                              epochs=2, budget_minutes=3, device="cpu", precision="fp32", batch_size=8, max_length=48,
                              train_max_length=32, query_max_length=16, heldout_fraction=0.2, val_patents=8,
                              hard_negatives=1, negative_top_k=5, log_every=1, lr=1e-3, weight_cpc=1.0,
                              lora_dropout=0.1)
    metrics = run(cfg)
    return out, cfg, metrics


@pytest.fixture(scope="session")
def embedder_exported(tmp_path_factory, embedder_run):
    """(model folder, manifest) of that run, exported fp32 with the legacy exporter."""
    from export.embedder import EmbedderExportOptions, export_embedder

    out = tmp_path_factory.mktemp("models") / "combined"
    manifest = export_embedder(EmbedderExportOptions(out, run=str(embedder_run[0]), exporter="legacy", int8=False))
    return out, manifest


@pytest.fixture()
def cuda_that_falls_back(monkeypatch):
    """onnxruntime that offers CUDA but hands every session the CPU provider: what a broken CUDA
    install does. Tests the CUDA code paths on machines without a GPU."""
    from inference.backend import session as session_module

    monkeypatch.setattr(session_module, "cuda_offered", lambda: True)
    real = session_module.ort.InferenceSession

    def cpu_only(path, options=None, providers=None):
        return real(path, options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(session_module.ort, "InferenceSession", cpu_only)
