"""Rank patents for free-text queries against an index: exact cosine top-k over the memory-mapped
embeddings, approximate (FAISS HNSW/IVF) where the index was built with one, and a hybrid BM25 +
dense mode (always exact: it fuses every document's two scores).

Example:
    >>> ranker = PatentRanker.load("indexes/minilm")                          # doctest: +SKIP
    >>> ranker.search("drug-coated balloon catheter", k=3)                    # doctest: +SKIP
    [('11213xxx', 0.71, 'Drug coated balloon ...'), ...]
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from inference.retrieval.fusion import DEFAULT_ALPHA, convex_scores, rrf_scores
from inference.retrieval.index import (
    IndexMismatchError,
    check_files,
    check_model,
    index_model_folder,
    load_index_files,
    read_index_info,
)
from inference.retrieval.topk import top_k_indices
from inference.retrieval.vector_search import ANN_FILE, NonFiniteRowError, ann_top_k, exact_scores, exact_top_k, load_ann
from inference.validate import check_positive

Hit = tuple[str, float, str]
HYBRID_QUERIES = 8  # queries whose dense score rows (each as long as the corpus) are held at once


def _load_ann(folder: Path, info: dict, ann: bool | None):
    """The index's FAISS structure (hash-checked), or None for exact search: none built, ``ann=False``,
    or FAISS not installed here (``ann=True`` then is an error)."""
    spec = info.get("ann") or {}
    if ann is False or not spec:
        if ann:
            raise IndexMismatchError(f"{folder}: built without an ANN structure; rebuild with --ann hnsw|ivf")
        return None
    check_files(folder, info, [ANN_FILE])
    index = load_ann(folder / ANN_FILE, spec.get("params", {}))
    if index is None and ann:
        raise IndexMismatchError(f"{folder}: has a {spec['kind']} ANN index but FAISS is not installed: pip install faiss-cpu")
    return index


def _load_bm25(folder: Path, info: dict):
    """The index's BM25 state after its hash check, or None when it has none or this install cannot
    read it (hybrid search then says why)."""
    if not info.get("bm25") or not (folder / "bm25").is_dir():
        return None
    check_files(folder, info, [name for name in info.get("files", {}) if name.startswith("bm25/")])
    try:
        from inference.retrieval.bm25 import Bm25Index

        return Bm25Index.load(folder / "bm25")
    except ImportError:
        return None


class PatentRanker:
    def __init__(self, folder: Path, info: dict, model, embeddings: np.ndarray, ids: list[str], titles: list[str],
                 bm25=None, ann_index=None):
        self.folder, self.info, self.model = folder, info, model
        self.embeddings, self.ids, self.titles, self.bm25 = embeddings, ids, titles, bm25
        self.ann_index = ann_index

    @classmethod
    def load(cls, index: str | os.PathLike, model: str | os.PathLike | None = None, variant: str | None = None,
             threads: int | None = None, ann: bool | None = None, device: str = "cpu",
             verify: bool = False) -> PatentRanker:
        """Open ``index``; the model defaults to the one it was built with, and any other is refused.
        ``ann``: None uses the index's ANN structure when it has one and FAISS is installed, False
        always searches exactly, True requires the ANN structure. ``verify``: hash the embeddings whole
        (by default a sample of them is checked: start-up does not grow with the corpus's hash)."""
        from inference.retrieval.encoder import EmbedderModel

        folder = Path(index)
        info = read_index_info(folder)
        if not info.get("complete"):
            raise IndexMismatchError(f"{folder}: the index build did not finish ({info['chunks_done']} chunks done); "
                                     "rerun `python -m inference index` with the same arguments to resume it")
        model_dir = model if model else index_model_folder(folder, info)
        encoder = EmbedderModel.load(model_dir, variant or info["variant"], threads, device)
        check_model(info, encoder, folder)
        embeddings, ids, titles = load_index_files(folder, info, verify)
        bm25 = _load_bm25(folder, info)
        return cls(folder, info, encoder, embeddings, ids, titles, bm25, _load_ann(folder, info, ann))

    def __len__(self) -> int:
        return len(self.ids)

    def dense_scores(self, query_vecs: np.ndarray) -> np.ndarray:
        """Cosine of each query with every document, (queries, docs); rows are unit vectors. Computed
        block by block over the memory map: only one block of the embeddings is ever in float32."""
        with self._finite_rows():
            return exact_scores(self.embeddings, query_vecs)

    def dense_top_k(self, query_vecs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices, scores) of the ``k`` nearest documents per query: ANN when loaded, else an exact
        block-wise scan of the memory-mapped embeddings."""
        if self.ann_index is not None:
            return ann_top_k(self.ann_index, query_vecs, k)
        with self._finite_rows():
            return exact_top_k(self.embeddings, query_vecs, k)

    @contextlib.contextmanager
    def _finite_rows(self):
        """A stored vector that scores NaN or inf is the index's fault, named like the load's check names it
        (a load checks every vector only with ``verify``; the scan that reads a row checks it always)."""
        try:
            yield
        except NonFiniteRowError as err:
            raise IndexMismatchError(f"{self.folder / 'embeddings.npy'}: row {err.row} (patent {self.ids[err.row]!r}) "
                                     "is not finite; rebuild the index") from None

    def search(self, query: str, k: int = 10, hybrid: str | bool = False, alpha: float = DEFAULT_ALPHA) -> list[Hit]:
        """Top ``k`` (patent_id, score, title), best first. ``hybrid``: True/"rrf" or "convex"."""
        return self.search_batch([query], k, hybrid, alpha)[0]

    def search_batch(self, queries: list[str], k: int = 10, hybrid: str | bool = False, alpha: float = DEFAULT_ALPHA,
                     batch_size: int = 64) -> list[list[Hit]]:
        """One ranked list per query; queries are embedded in batches and scored with one matmul each."""
        check_positive("k", k)
        check_positive("batch_size", batch_size)
        blank = [i for i, q in enumerate(queries) if not isinstance(q, str) or not q.strip()]
        if blank:
            raise ValueError(f"query {blank[0] + 1} of {len(queries)} is empty; every query needs some text")
        k = min(k, len(self.ids))
        mode = "rrf" if hybrid is True else (hybrid or "")
        if mode and mode not in ("rrf", "convex"):
            raise ValueError(f"hybrid {hybrid!r}: rrf or convex")
        if mode and self.bm25 is None:
            reason = ("bm25s or PyStemmer is not installed here: pip install bm25s PyStemmer" if self.info.get("bm25")
                      else "it was built without (bm25s missing or --no-bm25): rebuild it with bm25s installed")
            raise IndexMismatchError(f"{self.folder}: no BM25 state for hybrid search; {reason}")
        results: list[list[Hit]] = []
        for s in range(0, len(queries), batch_size):
            chunk = queries[s:s + batch_size]
            qv = self.model.encode_queries(chunk)
            if not mode:
                idx, scores = self.dense_top_k(qv, k)
                results += [[self._hit(i, sc) for i, sc in zip(ri, rs) if i >= 0] for ri, rs in zip(idx, scores)]
                continue
            for first in range(0, len(chunk), HYBRID_QUERIES):  # score rows for a few queries at a time
                dense = self.dense_scores(qv[first:first + HYBRID_QUERIES])
                for q, row in zip(chunk[first:first + HYBRID_QUERIES], dense):
                    sparse = self.bm25.scores(q)
                    row = rrf_scores([sparse, row]) if mode == "rrf" else convex_scores(sparse, row, alpha)
                    top = top_k_indices(row, k)
                    results.append([self._hit(i, row[i]) for i in top])
        return results

    def _hit(self, i: int, score: float) -> Hit:
        return self.ids[int(i)], float(score), self.titles[int(i)]
