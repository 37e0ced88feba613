"""Dense top-k: the block-wise exact scan over memory-mapped embeddings and FAISS HNSW/IVF structures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inference.retrieval.topk import top_k_indices
from inference.retrieval.vector_search import ANN_MIN_DOCS, choose_ann, exact_top_k


def _clustered(n: int, dim: int, seed: int = 0, centers: int = 50) -> np.ndarray:
    """Unit vectors around a few centres, like real embeddings (uniform noise has no neighbours to find)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, dim))
    x = c[rng.integers(0, centers, n)] + 0.6 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_blockwise_exact_scan_equals_one_matmul(tmp_path, dtype):
    emb = _clustered(1000, 16)
    path = tmp_path / "e.npy"
    np.save(path, emb.astype(dtype))
    mapped = np.load(path, mmap_mode="r")
    queries = _clustered(7, 16, seed=1)
    want = top_k_indices(queries @ np.asarray(mapped, dtype=np.float32).T, 10)
    for block in (1000, 333, 64, 7):  # blocks that do and do not divide the rows
        idx, scores = exact_top_k(mapped, queries, 10, block_rows=block)
        assert np.array_equal(idx, want), block
        assert np.all(np.diff(scores, axis=1) <= 0)
    idx, _ = exact_top_k(mapped, queries, 5000, block_rows=300)  # k past the end: every document once
    assert idx.shape == (7, 1000) and all(sorted(r) == list(range(1000)) for r in idx.tolist())


def test_ann_choice_by_corpus_size():
    assert choose_ann("auto", ANN_MIN_DOCS - 1) == "none"
    assert choose_ann("auto", ANN_MIN_DOCS) == "ivf" and choose_ann("auto", 10**9) == "ivf"
    assert choose_ann("hnsw", 10) == "hnsw" and choose_ann("none", 10**9) == "none"
    with pytest.raises(ValueError, match="ann 'flat'"):
        choose_ann("flat", 10)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_ann_recall_and_save_load(tmp_path, kind):
    pytest.importorskip("faiss")
    from inference.retrieval.vector_search import ann_top_k, build_ann, load_ann, save_ann

    emb, queries = _clustered(20_000, 32), _clustered(200, 32, seed=3)
    index, params = build_ann(emb, kind, block_rows=5000)
    save_ann(index, tmp_path / "ann.faiss")
    loaded = load_ann(tmp_path / "ann.faiss", params)
    exact, _ = exact_top_k(emb, queries, 10)
    approx, scores = ann_top_k(loaded, queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx.tolist(), exact.tolist())])
    assert recall >= 0.9, recall
    assert np.allclose(scores[:, 0], np.einsum("qd,qd->q", queries, emb[approx[:, 0]]), atol=1e-5)  # inner products


def test_index_with_hnsw_is_used_checked_and_bypassable(tmp_path, embedder_exported, patent_corpus):
    pytest.importorskip("faiss")
    from inference.retrieval import PatentRanker
    from inference.retrieval.index import IndexMismatchError, build_index

    model_dir, _ = embedder_exported
    info = build_index(model_dir, patent_corpus, tmp_path / "idx", chunk_size=32, progress=False, bm25=False, ann="hnsw")
    assert info["ann"]["kind"] == "hnsw" and "ann.faiss" in info["files"]
    ranker = PatentRanker.load(tmp_path / "idx")
    exact = PatentRanker.load(tmp_path / "idx", ann=False)
    assert ranker.ann_index is not None and exact.ann_index is None
    query = "absorbent article for pets"
    assert [h[0] for h in ranker.search(query, k=5)] == [h[0] for h in exact.search(query, k=5)]  # 60 docs: exact
    data = bytearray((tmp_path / "idx" / "ann.faiss").read_bytes())
    data[-3] ^= 0x01
    (tmp_path / "idx" / "ann.faiss").write_bytes(bytes(data))
    with pytest.raises(IndexMismatchError, match="ann.faiss: missing, or its sha256 does not match"):
        PatentRanker.load(tmp_path / "idx")
    assert PatentRanker.load(tmp_path / "idx", ann=False).search(query, k=1)  # exact search never reads it


def test_explicit_ann_without_faiss_fails_before_embedding(tmp_path, embedder_exported, patent_corpus, monkeypatch):
    import inference.retrieval.index as index_module

    monkeypatch.setattr(index_module, "faiss_module", lambda: None)
    with pytest.raises(ImportError, match="--ann ivf needs FAISS"):
        index_module.build_index(embedder_exported[0], patent_corpus, tmp_path / "idx", progress=False, ann="ivf")
    assert not (tmp_path / "idx").exists()
    info = index_module.build_index(embedder_exported[0], patent_corpus, tmp_path / "idx", progress=False, bm25=False)
    assert "ann" not in info and "ann" not in json.loads((tmp_path / "idx" / "index.json").read_text())
