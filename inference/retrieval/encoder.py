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
from inference.backend.runtime import Engine, Runner, RunsOnEngine, candidate_engines, fastest
from inference.backend.session import sequences_per_pass
from inference.backend.tokens import TextEncoder, length_buckets, pad_batch
from inference.backend.variants import VARIANTS_RULE

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

    The runner comes from ``inference/backend`` like the phrase scorer's: the same device rule
    ("auto" | "cpu" | "cuda", checked against the providers the session really got), runtime choice,
    thread count and IO binding on CUDA.
    """

    def __init__(self, runner: Runner, encoder: TextEncoder, variant: str = "fp32"):
        self.runner, self.encoder, self.variant = runner, encoder, variant

    @classmethod
    def load(cls, graph: str | os.PathLike, tokenizer_json: str | os.PathLike, max_length: int,
             pad_id: int | None = None, device: str = "auto", threads: int | None = None,
             variant: str = "fp32", runtime: str = "onnxruntime") -> OnnxEmbedder:
        """``variant`` "int8" encodes one text per pass (:func:`sequences_per_pass`); ``runtime``
        "onnxruntime" or "openvino" (``variant`` then "fp32" or "bf16" of the fp32 graph)."""
        return cls(Engine(runtime, variant).open(graph, device, threads),
                   text_encoder(tokenizer_json, max_length, pad_id), variant)

    @property
    def pad_id(self) -> int:
        return self.encoder.pad_id

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.runner.output_dim or 0), dtype=np.float32)
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


def text_encoder(tokenizer_json: str | os.PathLike, max_length: int, pad_id: int | None) -> TextEncoder:
    if pad_id is None:  # read before TextEncoder switches the tokenizer's own padding off
        from tokenizers import Tokenizer

        pad_id = pad_id_of(Tokenizer.from_file(str(tokenizer_json)))
    return TextEncoder.load(tokenizer_json, max_length, pad_id)


PROBE_TEXTS = [" ".join(f"probe word {i} {j}" for j in range(40)) for i in range(8)]  # 8 abstract-sized texts


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
class EmbedderModel(RunsOnEngine):
    """An exported embedder folder: manifest checked, graph hashed, queries and documents encodable."""

    folder: Path
    manifest: dict
    engine: Engine  # the runtime and variant that encode
    graph_sha256: str
    queries: OnnxEmbedder
    docs: OnnxEmbedder

    @classmethod
    def load(cls, folder: str | os.PathLike, variant: str = "auto", threads: int | None = None,
             device: str = "cpu", runtime: str = "auto") -> EmbedderModel:
        """``device``: "cpu" (default: an index is CPU-sized work), "cuda", or "auto" (CUDA where it works).
        ``runtime``: "auto" (on CPU the fastest of onnxruntime and OpenVINO bf16, measured once per machine:
        :mod:`inference.backend.runtime`) | "onnxruntime" | "openvino".
        ``variant``: "auto" (the fastest measured on CPU among the exported and gated ones, fp16 on CUDA) |
        "fp32" | "int8" | "fp16" | "bf16" (OpenVINO)."""
        folder = Path(folder)
        manifest = read_manifest(folder, KIND, MANIFEST_RULES)
        files = manifest.get("files", {})
        if "variants" not in manifest.data:
            manifest.data["variants"] = {v: [f] for v, f in LEGACY_GRAPHS.items() if f in files}
        check_fields(manifest.folder / MANIFEST, manifest.data, {"variants": VARIANTS_RULE})
        engines = candidate_engines(manifest, runtime, variant, device, cpu_preferred="int8")
        manifest.verify(["tokenizer.json"])
        tok, pad_id = manifest.path("tokenizer.json"), manifest.get("pad_id")
        if pad_id is not None and not is_count(pad_id):
            raise ModelFolderError(f"{folder}: field 'pad_id' is {pad_id!r}, expected an integer >= 0; re-export the model")
        docs_encoder = text_encoder(tok, manifest["max_length"], pad_id)

        def probe_feeds(engine: Engine, runner: Runner) -> list[dict]:
            ids = docs_encoder.encode(PROBE_TEXTS).ids
            return [{"input_ids": pad_batch([ids[r] for r in rows], docs_encoder.pad_id),
                     "attention_mask": pad_batch([[1] * len(ids[r]) for r in rows], 0)}
                    for rows in length_buckets([len(r) for r in ids], sequences_per_pass(engine.variant, 32))]

        engine, runner = fastest(engines, manifest, device, threads, probe_feeds)
        graph = engine.graphs(manifest)[0]
        # one runner serves both: queries and documents differ only in their token budget
        queries = OnnxEmbedder(runner, text_encoder(tok, manifest["query_max_length"], docs_encoder.pad_id), engine.variant)
        docs = OnnxEmbedder(runner, docs_encoder, engine.variant)
        return cls(manifest.folder, manifest.data, engine, files[graph]["sha256"], queries, docs)

    @property
    def providers(self) -> list[str]:
        """What really runs the graph, read back from the runtime (not what was asked for)."""
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
