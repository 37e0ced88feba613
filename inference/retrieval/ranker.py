"""Rank patents for free-text queries against an index: exact cosine top-k (numpy), FAISS for large
corpora when installed, and a hybrid BM25 + dense mode.

Example:
    >>> ranker = PatentRanker.load("indexes/minilm")                          # doctest: +SKIP
    >>> ranker.search("drug-coated balloon catheter", k=3)                    # doctest: +SKIP
    [('11213xxx', 0.71, 'Drug coated balloon ...'), ...]
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from inference.retrieval.fusion import convex_scores, rrf_scores
from inference.retrieval.index import IndexMismatchError, check_model, load_index_files, read_index_info
from inference.retrieval.topk import top_k_indices
from inference.validate import check_positive

FAISS_MIN_DOCS = 200_000  # below this an exact numpy scan is fast enough (and simpler to trust)
Hit = tuple[str, float, str]


def _faiss():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


class PatentRanker:
    def __init__(self, folder: Path, info: dict, model, embeddings: np.ndarray, ids: list[str], titles: list[str],
                 bm25=None, use_faiss: bool | None = None):
        self.folder, self.info, self.model = folder, info, model
        self.embeddings, self.ids, self.titles, self.bm25 = embeddings, ids, titles, bm25
        self.faiss_index = None
        faiss = _faiss()
        if faiss is not None and (use_faiss or (use_faiss is None and len(ids) >= FAISS_MIN_DOCS)):
            self.faiss_index = faiss.IndexFlatIP(embeddings.shape[1])
            self.faiss_index.add(np.ascontiguousarray(embeddings, dtype=np.float32))

    @classmethod
    def load(cls, index: str | os.PathLike, model: str | os.PathLike | None = None, variant: str | None = None,
             threads: int | None = None, use_faiss: bool | None = None, device: str = "cpu") -> PatentRanker:
        """Open ``index``; the model defaults to the one it was built with, and any other is refused."""
        from inference.retrieval.encoder import EmbedderModel

        folder = Path(index)
        info = read_index_info(folder)
        if not info.get("complete"):
            raise IndexMismatchError(f"{folder}: the index build did not finish ({info['chunks_done']} chunks done); "
                                     "rerun `python -m inference index` with the same arguments to resume it")
        model_dir = Path(model) if model else Path(info["model"])
        encoder = EmbedderModel.load(model_dir, variant or info["variant"], threads, device)
        check_model(info, encoder, folder)
        embeddings, ids, titles = load_index_files(folder, info)
        bm25 = None
        if info.get("bm25") and (folder / "bm25").is_dir():
            try:
                from inference.retrieval.bm25 import Bm25Index

                bm25 = Bm25Index.load(folder / "bm25")
            except ImportError:
                bm25 = None
        return cls(folder, info, encoder, embeddings, ids, titles, bm25, use_faiss)

    def __len__(self) -> int:
        return len(self.ids)

    def dense_scores(self, query_vecs: np.ndarray) -> np.ndarray:
        """Cosine of each query with every document, (queries, docs); rows are unit vectors."""
        return query_vecs @ np.asarray(self.embeddings, dtype=np.float32).T

    def search(self, query: str, k: int = 10, hybrid: str | bool = False, alpha: float = 0.5) -> list[Hit]:
        """Top ``k`` (patent_id, score, title), best first. ``hybrid``: True/"rrf" or "convex"."""
        return self.search_batch([query], k, hybrid, alpha)[0]

    def search_batch(self, queries: list[str], k: int = 10, hybrid: str | bool = False, alpha: float = 0.5,
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
            raise IndexMismatchError(f"{self.folder}: no BM25 state in this index (bm25s missing at build time); "
                                     "install bm25s and rebuild it for hybrid search")
        results: list[list[Hit]] = []
        for s in range(0, len(queries), batch_size):
            chunk = queries[s:s + batch_size]
            qv = self.model.encode_queries(chunk)
            if self.faiss_index is not None and not mode:
                scores, idx = self.faiss_index.search(np.ascontiguousarray(qv, dtype=np.float32), k)
                results += [[self._hit(i, sc) for i, sc in zip(ri, rs)] for ri, rs in zip(idx, scores)]
                continue
            dense = self.dense_scores(qv)
            for q, row in zip(chunk, dense):
                if mode:
                    sparse = self.bm25.scores(q)
                    row = rrf_scores([sparse, row]) if mode == "rrf" else convex_scores(sparse, row, alpha)
                top = top_k_indices(row, k)
                results.append([self._hit(i, row[i]) for i in top])
        return results

    def _hit(self, i: int, score: float) -> Hit:
        return self.ids[int(i)], float(score), self.titles[int(i)]
