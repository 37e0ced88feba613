"""Dense top-k over an index's embeddings: exact and memory-mapped, or approximate with FAISS.

* Exact (always available): the memory-mapped embeddings are scanned in blocks of ``block_rows``
  rows, keeping a running top-k, so a corpus larger than RAM is searched without loading it (the OS
  pages blocks in and out) and an fp16 index is never converted whole.
* Approximate (``faiss-cpu`` installed, built by ``inference index --ann``): IVF-Flat (k-means cells)
  or HNSW (a neighbour graph). Both meet the latency target at a million vectors, and IVF builds far
  faster, so ``auto`` builds IVF from ``ANN_MIN_DOCS`` vectors up and none below, where an exact scan is
  fast enough and needs no recall caveat (docs/decisions/ann-ivf-default.md); ``--ann hnsw`` is there
  for the lowest latency. The structure is saved as ``ann.faiss`` beside the
  embeddings and its search breadth (``nprobe`` / ``efSearch``) in index.json.

Example:
    >>> emb = np.eye(4, dtype=np.float32)
    >>> idx, scores = exact_top_k(emb, np.array([[0.1, 0.9, 0.0, 0.2]], dtype=np.float32), k=2, block_rows=3)
    >>> idx.tolist(), scores.astype(float).round(2).tolist()
    ([[1, 3]], [[0.9, 0.2]])
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from inference.retrieval.topk import top_k_indices

ANN_FILE = "ann.faiss"
ANN_KINDS = ("auto", "hnsw", "ivf", "none")
ANN_MIN_DOCS = 200_000  # below: exact search (auto); from here on: IVF
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 96
IVF_NPROBE = 48
BLOCK_ROWS = 65_536


def faiss_module():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


class NonFiniteRowError(ValueError):
    """A stored vector scored NaN or inf: it would rank arbitrarily (and JSON cannot carry the score)."""

    def __init__(self, row: int) -> None:
        super().__init__(f"row {row} is not a finite vector")
        self.row = row


def scored_blocks(embeddings: np.ndarray, queries: np.ndarray,
                  block_rows: int = BLOCK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, queries x block inner products) block by block over ``embeddings``, which may be a
    memmap of any float dtype (only one block is ever converted); :class:`NonFiniteRowError` names the
    first row of a block whose scores are not all finite."""
    queries = np.asarray(queries, dtype=np.float32)
    if not np.isfinite(queries).all():
        raise ValueError("the model gave a non-finite query embedding")
    for start in range(0, len(embeddings), block_rows):
        scores = queries @ np.asarray(embeddings[start:start + block_rows], dtype=np.float32).T
        if not np.isfinite(scores).all():
            raise NonFiniteRowError(start + int(np.flatnonzero(~np.isfinite(scores).all(axis=0))[0]))
        yield start, scores


def exact_scores(embeddings: np.ndarray, queries: np.ndarray, block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """Every document's inner product with each query, (queries, docs) float32, computed block-wise."""
    out = np.empty((len(queries), len(embeddings)), dtype=np.float32)
    for start, scores in scored_blocks(embeddings, queries, block_rows):
        out[:, start:start + scores.shape[1]] = scores
    return out


def exact_top_k(embeddings: np.ndarray, queries: np.ndarray, k: int,
                block_rows: int = BLOCK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """(indices, scores), best first, of the ``k`` largest inner products per query; ``embeddings`` may
    be a memmap of any float dtype and is read ``block_rows`` rows at a time."""
    k = min(k, len(embeddings))
    best_idx = np.zeros((len(queries), 0), dtype=np.int64)
    best = np.zeros((len(queries), 0), dtype=np.float32)
    for start, block_scores in scored_blocks(embeddings, queries, block_rows):
        scores = np.concatenate([best, block_scores], axis=1)
        idx = np.concatenate([best_idx, np.broadcast_to(np.arange(start, start + block_scores.shape[1]),
                                                        block_scores.shape)], axis=1)
        # ties: lower document index first, as in top_k_indices (the running best always holds lower indices)
        keep = top_k_indices(scores, k)
        best, best_idx = np.take_along_axis(scores, keep, 1), np.take_along_axis(idx, keep, 1)
    return best_idx, best


def choose_ann(kind: str, n_docs: int) -> str:
    """The ANN structure ``kind`` means for ``n_docs`` vectors: "hnsw", "ivf" or "none"."""
    if kind not in ANN_KINDS:
        raise ValueError(f"ann {kind!r}: one of {', '.join(ANN_KINDS)}")
    if kind != "auto":
        return kind
    return "none" if n_docs < ANN_MIN_DOCS else "ivf"


def build_ann(embeddings: np.ndarray, kind: str, block_rows: int = BLOCK_ROWS, seed: int = 0, progress=None):
    """A FAISS inner-product index of ``kind`` ("hnsw" or "ivf") over ``embeddings``, added block by block
    (``progress`` wraps the block starts, e.g. in a progress bar); returns (index, search params)."""
    faiss = faiss_module()
    if faiss is None:
        raise ImportError("approximate search needs FAISS: pip install faiss-cpu (or build with --ann none)")
    n, dim = embeddings.shape
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        params = {"efSearch": HNSW_EF_SEARCH}
    elif kind == "ivf":
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))  # FAISS wants >= 39 training points per cell
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n, size=min(n, 64 * nlist), replace=False))
        index.train(np.ascontiguousarray(embeddings[sample], dtype=np.float32))
        params = {"nprobe": min(IVF_NPROBE, nlist)}
    else:
        raise ValueError(f"ann {kind!r}: hnsw or ivf")
    starts = range(0, n, block_rows)
    for start in progress(starts) if progress else starts:
        index.add(np.ascontiguousarray(embeddings[start:start + block_rows], dtype=np.float32))
    return index, params


def save_ann(index, path: Path) -> None:
    faiss_module().write_index(index, str(path))


def load_ann(path: Path, params: dict):
    """The saved index with its search breadth set (None without FAISS: the caller searches exactly)."""
    faiss = faiss_module()
    if faiss is None:
        return None
    index = faiss.read_index(str(path))
    if "efSearch" in params:
        index.hnsw.efSearch = int(params["efSearch"])
    if "nprobe" in params:
        index.nprobe = int(params["nprobe"])
    return index


def ann_top_k(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, scores) from a FAISS index; an index of -1 marks a slot it could not fill (the caller
    drops those)."""
    scores, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return idx, scores
