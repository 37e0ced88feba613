"""Torch-free text embedding with an exported embedder folder (tokenizers + onnxruntime).

Example:
    >>> model = EmbedderModel.load("models/minilm")                          # doctest: +SKIP
    >>> model.encode_queries(["drug-coated balloon catheter"]).shape          # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.backend.manifest import ModelFolderError, read_manifest

KIND = "embedder"
VARIANTS = {"fp32": "model.onnx", "int8": "model.int8.onnx"}


class OnnxEmbedder:
    """One graph + its tokenizer; :meth:`encode` returns float32 unit vectors in input order."""

    def __init__(self, graph: str | os.PathLike, tokenizer_json: str | os.PathLike, max_length: int,
                 threads: int | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_json))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        pad = self.tokenizer.token_to_id("[PAD]")
        self.pad_id = 0 if pad is None else pad
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            dim = self.session.get_outputs()[0].shape[-1]
            return np.zeros((0, dim if isinstance(dim, int) else 0), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(-lengths, kind="stable")  # similar lengths per batch: less padding
        out: np.ndarray | None = None
        for s in range(0, len(texts), batch_size):
            rows = order[s:s + batch_size]
            width = int(lengths[rows].max())
            ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for j, r in enumerate(rows):
                ids[j, : lengths[r]] = encodings[r].ids
                mask[j, : lengths[r]] = 1
            vecs = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            if out is None:
                out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
            out[rows] = vecs
        return out


@dataclass
class EmbedderModel:
    """An exported embedder folder: manifest checked, graph hashed, queries and documents encodable."""

    folder: Path
    manifest: dict
    variant: str
    graph_sha256: str
    queries: OnnxEmbedder
    docs: OnnxEmbedder

    @classmethod
    def load(cls, folder: str | os.PathLike, variant: str = "fp32", threads: int | None = None) -> EmbedderModel:
        folder = Path(folder)
        manifest = read_manifest(folder, KIND)
        files = manifest.get("files", {})
        if variant == "auto":
            variant = "int8" if VARIANTS["int8"] in files else "fp32"
        if variant not in VARIANTS:
            raise ValueError(f"variant {variant!r}: expected one of {', '.join(VARIANTS)} or auto")
        graph = VARIANTS[variant]
        if graph not in files:
            raise ModelFolderError(f"{folder}: has no {variant} graph ({graph}); available: {sorted(files)}")
        manifest.verify([graph, "tokenizer.json"])
        tok = folder / "tokenizer.json"
        queries = OnnxEmbedder(folder / graph, tok, manifest["query_max_length"], threads)
        docs = OnnxEmbedder(folder / graph, tok, manifest["max_length"], threads)
        return cls(folder, manifest.data, variant, files[graph]["sha256"], queries, docs)

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def doc_view(self) -> str:
        return self.manifest.get("doc_view", "title+abstract")

    def encode_queries(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return self.queries.encode(texts, batch_size)

    def encode_docs(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        return self.docs.encode(texts, batch_size)
