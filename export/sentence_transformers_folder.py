"""An embedder run as a sentence-transformers folder: where the rest of a search stack already is.

    python -m export --run runs/NAME --format sentence-transformers --out models/NAME-st

The folder holds the merged weights (LoRA folded in, ``model.safetensors``), the tokenizer and the
modules sentence-transformers reads (``modules.json``: Transformer -> mean Pooling -> Normalize, the
same encoder the project trains), plus ``onnx/model.onnx`` where sentence-transformers' ONNX backend
looks for it. Both load without this project:

    >>> from sentence_transformers import SentenceTransformer                   # doctest: +SKIP
    >>> SentenceTransformer("models/NAME-st").encode(["drug-coated balloon"])   # doctest: +SKIP
    >>> SentenceTransformer("models/NAME-st", backend="onnx")                    # doctest: +SKIP

The ONNX graph is the backbone alone (``last_hidden_state``), because sentence-transformers pools and
normalises after it; the project's own folders (``python -m export``) put pooling inside the graph.
One maximum length (``max_seq_length``: the run's document length) serves queries and documents.
Gate: the graph's mean-pooled, normalised output must match the PyTorch encoder within
``max_abs_diff``; the folder is written beside ``--out`` and moved into place only after it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from export.embedder import PARITY_TEXTS, load_source
from export.onnx_graph import GraphSpec, export_graph
from export.parity import ParityError
from export.staging import open_stage, publish

log = logging.getLogger(__name__)

FORMAT = "sentence-transformers"
ONNX_FILE = "onnx/model.onnx"
MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]


class _HiddenStates(torch.nn.Module):
    """The backbone with the outputs sentence-transformers' ONNX backend reads (``last_hidden_state``)."""

    def __init__(self, backbone: torch.nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        names = ("input_ids", "attention_mask", "token_type_ids")[: len(inputs)]
        return self.backbone(**dict(zip(names, inputs))).last_hidden_state


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _mean_normalised(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    mask = mask[..., None].astype(np.float32)
    pooled = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def write_modules(folder: Path, dim: int, max_length: int) -> None:
    """The configuration files that make ``folder`` a sentence-transformers model (mean pooling, cosine)."""
    _write_json(folder / "modules.json", MODULES)
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": max_length, "do_lower_case": False})
    _write_json(folder / "1_Pooling" / "config.json", {
        "word_embedding_dimension": dim, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False})
    (folder / "2_Normalize").mkdir(exist_ok=True)
    _write_json(folder / "config_sentence_transformers.json", {"similarity_fn_name": "cosine", "prompts": {},
                                                               "default_prompt_name": None})


def export_onnx(backbone: torch.nn.Module, tokenizer, folder: Path, uses_token_type_ids: bool,
                opset: int = 17) -> tuple[Path, list[str]]:
    """``folder/onnx/model.onnx`` with dynamic batch and sequence; returns (path, input names)."""
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if uses_token_type_ids else [])
    axes = {0: "batch", 1: "sequence"}
    spec = GraphSpec(inputs={n: axes for n in names}, outputs={"last_hidden_state": axes})
    example = tokenizer(PARITY_TEXTS[:2], padding=True, return_tensors="pt")
    path = folder / ONNX_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    inputs = tuple(example[n] if n in example else torch.zeros_like(example["input_ids"]) for n in names)
    export_graph(_HiddenStates(backbone), inputs, spec, path, "legacy", opset)
    return path, names


def onnx_parity(path: Path, names: list[str], encoder, tokenizer, max_length: int) -> float:
    """max |embedding of the graph (pooled and normalised as sentence-transformers does) - PyTorch|."""
    import onnxruntime as ort

    batch = tokenizer(PARITY_TEXTS, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    feeds = {n: batch[n].astype(np.int64) if n in batch else np.zeros_like(batch["input_ids"], dtype=np.int64)
             for n in names}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = _mean_normalised(session.run(["last_hidden_state"], feeds)[0], batch["attention_mask"])
    with torch.no_grad():
        ref = encoder(torch.from_numpy(feeds["input_ids"]), torch.from_numpy(feeds["attention_mask"])).numpy()
    return float(np.abs(ref - got).max())


def export_sentence_transformers(out: str | Path, run: str | None = None, model: str | None = None, *,
                                 force: bool = False, max_abs_diff: float = 1e-4, opset: int = 17) -> dict:
    """Write the sentence-transformers folder; returns a summary. Raises ParityError when the graph is off."""
    out = Path(out)
    stage = open_stage(out, force)
    encoder, tokenizer, cfg, _ = load_source(run, model)
    encoder = encoder.float().eval()  # load_source merged LoRA
    backbone = encoder.backbone
    backbone.save_pretrained(stage, safe_serialization=True)
    tokenizer.save_pretrained(stage)
    dim = int(backbone.config.hidden_size)
    write_modules(stage, dim, cfg.max_length)
    path, names = export_onnx(backbone, tokenizer, stage, encoder.uses_token_type_ids, opset)
    diff = onnx_parity(path, names, encoder, tokenizer, cfg.max_length)
    if diff > max_abs_diff:
        raise ParityError(f"{ONNX_FILE} differs from PyTorch by {diff:.2e} > {max_abs_diff:.0e} (max |diff| of "
                          "pooled, normalised embeddings)")
    summary = {"format": FORMAT, "source_run": str(run) if run else None, "backbone": cfg.backbone, "dim": dim,
               "max_seq_length": cfg.max_length, "onnx": ONNX_FILE, "onnx_inputs": names,
               "onnx_max_abs_diff": diff}
    _write_json(stage / "export_info.json", summary)
    publish(stage, out)
    return summary


def main(args) -> int:
    """``python -m export --run RUN --format sentence-transformers --out DIR``."""
    try:
        summary = export_sentence_transformers(args.out, run=args.run, force=args.force,
                                               max_abs_diff=args.max_abs_diff, opset=args.opset or 17)
    except ParityError as err:
        raise SystemExit(f"error: {err}") from None
    print(json.dumps({"out": str(args.out), **summary}, indent=2))
    return 0
