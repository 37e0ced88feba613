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

from inference.backend.manifest import MANIFEST, ModelFolderError, check_fields, is_count, read_manifest
from inference.backend.session import OnnxRunner, sequences_per_pass, wants_cuda
from inference.backend.tokens import TextEncoder, length_buckets, pad_batch
from inference.backend.variants import VARIANTS_RULE, pick_variant

KIND = "embedder"
LEGACY_GRAPHS = {"fp32": "model.onnx", "int8": "model.int8.onnx"}  # folders exported before the variants map
# What the loader reads from the manifest, with what each must be (checked before any file is opened)
MANIFEST_RULES = {
    "max_length": ("an integer >= 2", lambda v: is_count(v, 2)),
    "query_max_length": ("an integer >= 2", lambda v: is_count(v, 2)),
    "dim": ("an integer >= 1", lambda v: is_count(v, 1)),
}


class OnnxEmbedder:
    """One graph + its tokenizer; :meth:`encode` returns float32 unit vectors in input order.

    The session comes from ``inference/backend`` like the phrase scorer's: the same device rule
    ("auto" | "cpu" | "cuda", checked against the providers the session really got), thread count
    and IO binding on CUDA.
    """

    def __init__(self, runner: OnnxRunner, encoder: TextEncoder, variant: str = "fp32"):
        self.runner, self.encoder, self.variant = runner, encoder, variant

    @classmethod
    def load(cls, graph: str | os.PathLike, tokenizer_json: str | os.PathLike, max_length: int,
             pad_id: int | None = None, device: str = "auto", threads: int | None = None,
             variant: str = "fp32") -> OnnxEmbedder:
        """``variant`` "int8" encodes one text per pass (:func:`sequences_per_pass`)."""
        if pad_id is None:  # read before TextEncoder switches the tokenizer's own padding off
            from tokenizers import Tokenizer

            pad_id = pad_id_of(Tokenizer.from_file(str(tokenizer_json)))
        return cls(OnnxRunner.create(graph, device, threads), TextEncoder.load(tokenizer_json, max_length, pad_id),
                   variant)

    @property
    def pad_id(self) -> int:
        return self.encoder.pad_id

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            dim = self.runner.session.get_outputs()[0].shape[-1]
            return np.zeros((0, dim if isinstance(dim, int) else 0), dtype=np.float32)
        ids = self.encoder.encode(texts).ids
        out: np.ndarray | None = None
        per_pass = sequences_per_pass(self.variant, batch_size)
        for rows in length_buckets([len(r) for r in ids], per_pass):  # similar lengths per batch: less padding
            batch = pad_batch([ids[r] for r in rows], self.pad_id)
            mask = pad_batch([[1] * len(ids[r]) for r in rows], 0)
            vecs = self.runner.run({"input_ids": batch, "attention_mask": mask})
            if out is None:
                out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
            out[rows] = vecs
        return out


def pad_id_of(tokenizer) -> int:
    """The pad id a tokenizer.json declares (its padding settings, else its pad token), 0 if none.

    Older model folders have no ``pad_id`` in their manifest; BERT's "[PAD]" is not every model's.
    """
    padding = tokenizer.padding
    if padding and padding.get("pad_id") is not None:
        return int(padding["pad_id"])
    for token in ("[PAD]", "<pad>", "<|pad|>"):
        found = tokenizer.token_to_id(token)
        if found is not None:
            return found
    return 0


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
    def load(cls, folder: str | os.PathLike, variant: str = "fp32", threads: int | None = None,
             device: str = "cpu") -> EmbedderModel:
        """``device``: "cpu" (default: an index is CPU-sized work), "cuda", or "auto" (CUDA where it works).
        ``variant``: "fp32" (default) | "int8" | "fp16" | "auto" (fp16 on CUDA, int8 on CPU, where exported)."""
        folder = Path(folder)
        manifest = read_manifest(folder, KIND, MANIFEST_RULES)
        files = manifest.get("files", {})
        if "variants" not in manifest.data:
            manifest.data["variants"] = {v: [f] for v, f in LEGACY_GRAPHS.items() if f in files}
        check_fields(manifest.folder / MANIFEST, manifest.data, {"variants": VARIANTS_RULE})
        variant = pick_variant(manifest, variant, wants_cuda(device), cpu_preferred="int8")
        graph = manifest["variants"][variant][0]
        manifest.verify([graph, "tokenizer.json"])
        tok, pad_id = manifest.path("tokenizer.json"), manifest.get("pad_id")
        if pad_id is not None and not is_count(pad_id):
            raise ModelFolderError(f"{folder}: field 'pad_id' is {pad_id!r}, expected an integer >= 0; re-export the model")
        queries = OnnxEmbedder.load(manifest.path(graph), tok, manifest["query_max_length"], pad_id, device, threads,
                                    variant)
        # one session serves both: queries and documents differ only in their token budget
        docs = OnnxEmbedder(queries.runner, TextEncoder.load(tok, manifest["max_length"], queries.pad_id), variant)
        return cls(folder, manifest.data, variant, files[graph]["sha256"], queries, docs)

    @property
    def providers(self) -> list[str]:
        """The onnxruntime providers the session really runs on (not the ones asked for)."""
        return self.queries.runner.providers

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
