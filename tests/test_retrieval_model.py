"""Embedder end to end on the tiny random BERT: train (every loss), resume guard, evaluate, export,
index round trip (resumable, fp16), search (dense, hybrid, batch), refusal of a mismatched index."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, write_csv

COLUMNS = ["patent_id", "patent_title", "patent_abstract", "cpc_subclasses"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    with open(ROOT / "data" / "patents" / "a61_patents.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))[:60]
    return write_csv(tmp_path_factory.mktemp("corpus") / "patents.csv", rows, COLUMNS)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model, corpus):
    from solution.embedder.config import EmbedderTrainConfig
    from solution.embedder.train import run

    out = tmp_path_factory.mktemp("runs") / "combined"
    cfg = EmbedderTrainConfig(corpus=str(corpus), recipe="combined", model=str(tiny_model), out=str(out), epochs=2,
                              budget_minutes=3, device="cpu", precision="fp32", batch_size=8, max_length=48,
                              train_max_length=32, query_max_length=16, heldout_fraction=0.2, val_patents=8,
                              hard_negatives=1, negative_top_k=5, log_every=1, lr=1e-3)
    metrics = run(cfg)
    return out, cfg, metrics


@pytest.fixture(scope="module")
def exported(tmp_path_factory, trained):
    from export.embedder import export_embedder

    out = tmp_path_factory.mktemp("models") / "combined"
    manifest = export_embedder(out, run=str(trained[0]), exporter="legacy", int8=False)
    return out, manifest


def test_training_run_folder(trained):
    run_dir, cfg, metrics = trained
    for name in ("embedder_config.json", "trainable_state.pt", "tokenizer/tokenizer.json", "split.json",
                 "queries.jsonl", "metrics.json", "checkpoint.pt", "steps.jsonl", "config.json"):
        assert (run_dir / name).exists(), name
    split = json.loads((run_dir / "split.json").read_text())
    assert len(split["heldout"]) == 12 and not set(split["heldout"]) & set(split["trained"])
    epochs = metrics["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert {"train_mqg", "train_align", "train_cpc"} <= set(epochs[0]) and np.isfinite(epochs[-1]["train_loss"])
    assert "val_title2abstract_ndcg@10" in epochs[-1]
    roles = {json.loads(line)["role"] for line in (run_dir / "queries.jsonl").read_text().splitlines()}
    assert roles == {"concept", "keyword", "question", "colloquial", "misspelled"}


def test_resume_guard_and_complete_run(trained):
    from solution.embedder.train import run

    run_dir, cfg, metrics = trained
    with pytest.raises(SystemExit, match="already holds a run"):
        run(cfg)
    assert run(cfg, resume=True)["steps"] == metrics["steps"]  # complete: nothing to do


def test_mid_epoch_resume_matches_an_uninterrupted_run(tmp_path, tiny_model, corpus, monkeypatch):
    """A crash mid-epoch loses nothing: resuming from the per-step checkpoint ends with the same weights."""
    import torch

    import solution.embedder.train as train_module
    from solution.embedder.config import EmbedderTrainConfig

    def config(name: str) -> EmbedderTrainConfig:
        # no warm-up and a budget far away: the clock cannot change a learning rate between the runs
        return EmbedderTrainConfig(corpus=str(corpus), recipe="mqg", model=str(tiny_model), out=str(tmp_path / name),
                                   epochs=2, budget_minutes=600, device="cpu", precision="fp32", batch_size=8,
                                   max_length=48, train_max_length=32, query_max_length=16, heldout_fraction=0.2,
                                   val_patents=0, negative_top_k=5, lr=1e-3, warmup_ratio=0.0,
                                   checkpoint_minutes=0.0)

    whole = train_module.run(config("whole"))
    real, calls = train_module.step_loss, {"n": 0}

    def crash_in_the_middle(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 9:  # batch 3 of epoch 2 (48 training patents: 6 batches per epoch)
            raise KeyboardInterrupt("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "step_loss", crash_in_the_middle)
    with pytest.raises(KeyboardInterrupt):
        train_module.run(config("crashed"))
    ckpt = torch.load(tmp_path / "crashed" / "checkpoint.pt", weights_only=True)
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (1, 2, 8)
    monkeypatch.setattr(train_module, "step_loss", real)
    resumed = train_module.run(config("crashed"), resume=True)
    assert resumed["steps"] == whole["steps"] == 12
    a = torch.load(tmp_path / "whole" / "trainable_state.pt")
    b = torch.load(tmp_path / "crashed" / "trainable_state.pt")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert any(float(a[k].abs().sum()) > 0 for k in a if "lora_B" in k)  # it trained (LoRA B starts at zero)


@pytest.mark.parametrize("all_views", [True, False])
def test_combined_cpc_loss_spans_every_encoded_view(tmp_path, tiny_model, corpus, monkeypatch, all_views):
    """The CPC term sees the step's queries, documents, negatives, titles and abstracts, each row
    labelled with the subclasses of the patent it came from; or only the documents when switched off."""
    import random

    import solution.embedder.losses as losses
    from inference.retrieval.corpus import read_patents
    from solution.embedder.config import EmbedderTrainConfig
    from solution.embedder.model import build_encoder
    from solution.embedder.train import TrainingData, step_loss

    cfg = EmbedderTrainConfig(corpus=str(corpus), recipe="combined", model=str(tiny_model), hard_negatives=1,
                              negative_top_k=5, train_max_length=32, query_max_length=16, cpc_all_views=all_views)
    patents = read_patents(corpus)[:20]
    data = TrainingData(cfg, patents, tmp_path, corpus=patents)
    model, tokenizer = build_encoder(cfg.embedder_config())
    seen, real = {}, losses.supcon_loss

    def spy(embeddings, labels, tau):
        seen["n"], seen["labels"] = len(embeddings), labels.cpu().numpy()
        return real(embeddings, labels, tau)

    monkeypatch.setattr(losses, "supcon_loss", spy)
    idx = np.array([3, 7, 11, 15])
    step_loss(model, data, idx, cfg, cfg.loss_weights(), random.Random(0), tokenizer, "cpu", "fp32")
    negs = [data.query_negs[r][i][0] for r, i in zip([random.Random(0).choice(cfg.roles) for _ in idx], idx)]
    if all_views:  # queries, documents, query negatives, titles, abstracts, title negatives
        owners = [*idx, *idx, *negs, *idx, *idx, *(data.align_negs[i][0] for i in idx)]
    else:
        owners = list(idx)
    assert seen["n"] == len(owners)
    assert (seen["labels"] == data.labels[owners]).all()


def test_evaluate_table(trained, small_data, corpus):
    from solution.embedder.evaluate import EvalOptions, run_evaluation

    opts = EvalOptions(corpus=str(corpus), phrases=str(small_data / "uspppm" / "train.csv"), max_patents=5,
                       max_phrase_groups=5, max_length=48)
    report = run_evaluation(str(trained[0]), None, opts)
    # 5 of the 12 held-out patents are queries, searched among all 60; labels use all 12
    assert (report["n_heldout_scored"], report["n_heldout"], report["n_searched"]) == (5, 12, 60)
    systems = set(report["results"])
    assert {"zero-shot", "bm25"} <= systems and any(s.startswith("hybrid-rrf") for s in systems)
    run_row = report["results"]["combined:combined"]
    for key in ("title2abstract", "queries:misspelled", "classification_macro_f1", "clustering_v_measure",
                "phrase_ndcg@10"):
        assert key in run_row
    assert 0.0 <= run_row["title2abstract"]["ndcg@10"] <= 1.0
    assert "| bm25 |" in report["table"]


def test_export_parity_and_manifest(exported):
    out, manifest = exported
    assert manifest["kind"] == "embedder" and manifest["gates"]["fp32_max_abs_diff"] <= 1e-4
    assert {"model.onnx", "tokenizer.json"} <= set(manifest["files"])


def test_index_round_trip_and_search(tmp_path, exported, corpus):
    from inference.retrieval import PatentRanker
    from inference.retrieval.corpus import read_patents
    from inference.retrieval.encoder import EmbedderModel
    from inference.retrieval.index import build_index

    model_dir, _ = exported
    info = build_index(model_dir, corpus, tmp_path / "idx", chunk_size=16, progress=False)
    assert info["complete"] and info["count"] == 60 and info["bm25"]
    patents = read_patents(corpus)
    model = EmbedderModel.load(model_dir)
    direct = model.encode_docs([p.view(model.doc_view) for p in patents])
    stored = np.load(tmp_path / "idx" / "embeddings.npy", mmap_mode="r")
    assert np.allclose(stored, direct, atol=1e-5)

    ranker = PatentRanker.load(tmp_path / "idx")
    query = patents[5].title
    hits = ranker.search(query, k=5)
    expected = np.argsort(-(direct @ model.encode_queries([query])[0]), kind="stable")[:5]
    assert [h[0] for h in hits] == [patents[i].patent_id for i in expected]
    assert hits[0][2] == patents[expected[0]].title and hits[0][1] >= hits[-1][1]
    hybrid = ranker.search(query, k=3, hybrid=True)
    assert patents[5].patent_id in [h[0] for h in hybrid]  # BM25 on the exact title
    batch = ranker.search_batch([query, patents[9].title], k=4, hybrid="convex")
    assert len(batch) == 2 and all(len(b) == 4 for b in batch)


def test_index_resume_and_fp16(tmp_path, exported, corpus):
    from inference.retrieval.index import INDEX_FILE, build_index

    model_dir, _ = exported
    out = tmp_path / "idx16"
    build_index(model_dir, corpus, out, dtype="float16", chunk_size=16, progress=False, bm25=False)
    full = np.array(np.load(out / "embeddings.npy"))
    assert full.dtype == np.float16
    # simulate an interruption after the first chunk: the tail is lost, the progress says 1 chunk
    info = json.loads((out / INDEX_FILE).read_text())
    info.update(chunks_done=1, complete=False)
    (out / INDEX_FILE).write_text(json.dumps(info))
    emb = np.load(out / "embeddings.npy", mmap_mode="r+")
    emb[16:] = 0
    emb.flush()
    del emb
    again = build_index(model_dir, corpus, out, dtype="float16", chunk_size=16, progress=False, bm25=False)
    assert again["complete"] and np.array_equal(np.load(out / "embeddings.npy"), full)


def test_mismatched_index_refused(tmp_path, exported, corpus, tiny_model):
    from export.embedder import export_embedder
    from inference.retrieval import PatentRanker
    from inference.retrieval.index import IndexMismatchError, build_index

    model_dir, _ = exported
    build_index(model_dir, corpus, tmp_path / "idx", chunk_size=32, progress=False, bm25=False)
    other = export_embedder(tmp_path / "zero-shot", model=str(tiny_model), exporter="legacy", int8=False)
    assert other["files"]["model.onnx"]["sha256"] != json.loads((tmp_path / "idx" / "index.json").read_text())["model_sha256"]
    with pytest.raises(IndexMismatchError, match="embeddings of different models are not comparable"):
        PatentRanker.load(tmp_path / "idx", model=tmp_path / "zero-shot")
    with pytest.raises(IndexMismatchError, match="built with model"):
        build_index(tmp_path / "zero-shot", corpus, tmp_path / "idx", chunk_size=32, progress=False)


def test_cli_index_search_and_export_dispatch(tmp_path, trained, corpus):
    """The user-facing commands: python -m export (kind dispatch), python -m inference index / search."""
    env_cmd = [sys.executable, "-m"]
    out = tmp_path / "model"
    subprocess.run(env_cmd + ["export", "--run", str(trained[0]), "--out", str(out), "--exporter", "legacy",
                              "--no-int8", "--no-fp16"], check=True, cwd=ROOT, capture_output=True)
    subprocess.run(env_cmd + ["inference", "index", "--model", str(out), "--corpus", str(corpus), "--out",
                              str(tmp_path / "idx"), "--quiet"], check=True, cwd=ROOT, capture_output=True)
    res = subprocess.run(env_cmd + ["inference", "search", "--index", str(tmp_path / "idx"), "--query",
                                    "absorbent article for pets", "-k", "3", "--hybrid", "convex", "--alpha", "0", "--json"],
                         check=True, cwd=ROOT, capture_output=True, text=True)
    hits = json.loads(res.stdout)[0]["hits"]
    assert len(hits) == 3 and hits[0]["patent_id"] == "11213014"  # alpha 0: BM25 alone decides (random tiny model)
    bad = subprocess.run(env_cmd + ["inference", "search", "--index", str(tmp_path / "nope"), "--query", "x"],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "not an index folder" in bad.stderr


def test_inference_retrieval_is_torch_free():
    code = ("import sys, inference.retrieval.cli, inference.retrieval.ranker, inference.retrieval.encoder, "
            "inference.retrieval.index; from inference import PatentRanker; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
