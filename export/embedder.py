"""Export a retrieval embedder run (or a plain backbone) to a torch-free model folder.

    python -m export --run runs/NAME --out models/NAME                      # via the kind dispatcher
    python -m export.embedder --model sentence-transformers/all-MiniLM-L6-v2 --out models/minilm   # zero-shot

The graph takes ``input_ids, attention_mask`` (int64, dynamic batch and length) and returns
``embeddings`` (float32, unit length): LoRA is merged, mean pooling and L2 normalisation are inside
the graph, so the inference side only tokenises and runs it. Gates: the fp32 graph must match PyTorch
within ``--max-abs-diff`` (1e-4); the int8 graph is kept only if title -> abstract nDCG@10 on held-out
patents stays within ``--max-ndcg-loss`` (0.005) of the fp32 graph, else it is dropped with the numbers.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from export.fusion import fuse_transformer
from export.model_card import write_model_card
from export.mpnet_attention import export_context
from export.onnx_graph import DEFAULT_EXPORTER, EXPORTERS, GraphSpec, default_opset, export_graph
from export.parity import ParityError, ParityGate
from export.staging import apply_gate, open_stage, publish
from inference.validate import non_negative_float, positive_int

MARKER = "embedder_config.json"
KIND = "embedder"
SPEC = GraphSpec(inputs={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}},
                 outputs={"embeddings": {0: "batch"}})
PARITY_TEXTS = [
    "Drug-coated balloon catheter", "A stent comprising a tubular mesh of nitinol struts.",
    "what device can absorb urine from pets?", "pharmaceutical composition for treating hypertension",
    "An electrode array implanted in the cochlea stimulates the auditory nerve with pulses.", "knee",
]


def add_arguments(parser) -> None:
    group = parser.add_argument_group("embedder runs")
    group.add_argument("--corpus", default="data/patents/a61_patents.csv",
                       help="patent CSV for the int8 retrieval gate (held-out patents of the run)")
    group.add_argument("--gate-patents", type=positive_int, default=200, help="held-out patents in the int8 nDCG gate")
    group.add_argument("--max-ndcg-loss", type=non_negative_float, default=0.005,
                       help="keep int8 only if title -> abstract nDCG@10 drops at most this much (default 0.005)")


def load_source(run: str | None, model: str | None):
    """(encoder, tokenizer, config, split or None) from a run folder (LoRA merged) or a plain backbone."""
    from solution.embedder.model import EmbedderConfig, build_encoder, load_run_encoder

    eager = {"attn_implementation": "eager"}  # the attention pattern onnxruntime's optimizer fuses
    if run:
        enc, tok, cfg = load_run_encoder(run, **eager)
        split_path = Path(run) / "split.json"
        split = json.loads(split_path.read_text()) if split_path.exists() else None
        return enc, tok, cfg, split
    cfg = EmbedderConfig(backbone=model, lora=False)
    enc, tok = build_encoder(cfg, **eager)
    return enc.eval(), tok, cfg, None


def onnx_embed(path: Path, tokenizer_json: Path, texts: list[str], max_length: int, batch_size: int = 32,
               variant: str = "fp32") -> np.ndarray:
    """Embeddings through the inference library's encoder, as the graph ships (int8: one text per pass)."""
    from inference.retrieval.encoder import OnnxEmbedder

    return OnnxEmbedder.load(path, tokenizer_json, max_length, device="cpu", variant=variant).encode(texts, batch_size)


def ndcg_pair(fp32: Path, int8: Path, tokenizer_json: Path, cfg, corpus: str, split: dict | None,
              n: int) -> tuple[float, float, int]:
    """title -> abstract nDCG@10 of both graphs on held-out (or, without a split, the first) patents:
    (fp32's, int8's, patents)."""
    from inference.retrieval.corpus import read_patents
    from solution.embedder.metrics import ir_metrics

    patents = read_patents(corpus)
    if split:
        held = set(split["heldout"])
        patents = [p for p in patents if p.patent_id in held]
    patents = patents[:n]
    qrels = [{i: 1.0} for i in range(len(patents))]
    ndcg = []
    for name, path in (("fp32", fp32), ("int8", int8)):
        q = onnx_embed(path, tokenizer_json, [p.title for p in patents], cfg.query_max_length, variant=name)
        d = onnx_embed(path, tokenizer_json, [p.abstract for p in patents], cfg.max_length, variant=name)
        ndcg.append(ir_metrics(q @ d.T, qrels, ks=(1,))["ndcg@10"])
    return ndcg[0], ndcg[1], len(patents)


@dataclass
class EmbedderExportOptions:
    """What ``python -m export`` takes for an embedder run (or, with ``model``, a zero-shot backbone)."""

    out: str
    run: str | None = None
    model: str | None = None  # a backbone id or folder instead of a run
    exporter: str = DEFAULT_EXPORTER
    opset: int | None = None  # None: the exporter's default
    fuse: bool = True  # onnxruntime's transformer fusions (export/fusion.py)
    int8: bool = True
    int8_isa: str = "avx512_vnni"
    max_abs_diff: float = 1e-4
    max_ndcg_loss: float = 0.005
    corpus: str = "data/patents/a61_patents.csv"  # the int8 gate's patents (the run's held-out ones)
    gate_patents: int = 200
    force: bool = False

    def __post_init__(self) -> None:
        self.out = str(self.out)  # a Path is welcome; the manifest records the options as JSON
        if (self.run is None) == (self.model is None):
            raise ValueError("export one of: a run (run=...) or a backbone (model=...)")


def export_embedder(opts: EmbedderExportOptions) -> dict:
    """Write the model folder; returns its manifest. Raises ParityError when the fp32 graph is off."""
    from inference.backend.manifest import write_manifest

    out = Path(opts.out)
    stage = open_stage(out, opts.force)  # an old --out stays until the new folder passed its gates
    enc, tok, cfg, split = load_source(opts.run, opts.model)
    enc = enc.float().eval()  # load_source merged LoRA
    t0 = time.time()
    example = tok(PARITY_TEXTS[:2], padding=True, return_tensors="pt")
    with export_context(enc, opts.fuse, opts.exporter):
        export_graph(enc, (example["input_ids"], example["attention_mask"]), SPEC, stage / "model.onnx", opts.exporter,
                     opts.opset)
    arch = enc.backbone.config
    fused = fuse_transformer(stage / "model.onnx", arch.num_attention_heads, arch.hidden_size,
                             arch.num_hidden_layers) if opts.fuse else {}
    tok.backend_tokenizer.save(str(stage / "tokenizer.json"))
    export_s = time.time() - t0

    # parity: PyTorch vs the fp32 graph, on text of several lengths, through our own tokenisation path
    gate = ParityGate("ndcg@10", opts.max_abs_diff, opts.max_ndcg_loss)
    with torch.no_grad():
        batch = tok(PARITY_TEXTS, padding=True, truncation=True, max_length=cfg.max_length, return_tensors="pt")
        ref = enc(batch["input_ids"], batch["attention_mask"]).numpy()
    got = onnx_embed(stage / "model.onnx", stage / "tokenizer.json", PARITY_TEXTS, cfg.max_length)
    gate.check_fp32("fp32", ref, got)
    variants = {"fp32": ["model.onnx"]}
    if opts.int8:
        from export.variants import quantize_int8

        quantize_int8(stage / "model.onnx", stage / "model.int8.onnx", opts.int8_isa)
        variants["int8"] = ["model.int8.onnx"]
        ndcg32, ndcg8, n = ndcg_pair(stage / "model.onnx", stage / "model.int8.onnx", stage / "tokenizer.json", cfg,
                                     opts.corpus, split, opts.gate_patents)
        gate.check_metric("int8", ndcg32, ndcg8, n)
    apply_gate(gate, stage, variants, f"export of {opts.run or opts.model}")
    body = {"source_run": str(opts.run) if opts.run else None, "backbone": cfg.backbone, "dim": int(got.shape[1]),
            "max_length": cfg.max_length, "query_max_length": cfg.query_max_length, "doc_view": cfg.doc_view,
            "pad_id": tok.pad_token_id if tok.pad_token_id is not None else 0,
            "pooling": "mean", "normalized": True, "inputs": list(SPEC.inputs), "output": "embeddings",
            "variants": variants, "exporter": opts.exporter, "opset": opts.opset or default_opset(opts.exporter),
            "options": asdict(opts), "fused_operators": fused, "export_s": export_s, "parity": gate.to_dict()}
    manifest = write_manifest(stage, KIND, body, ["tokenizer.json", *(f for fs in variants.values() for f in fs)])
    write_model_card(stage, out.name, KIND, body, asdict(cfg), cfg.backbone)
    publish(stage, out)
    return manifest


def main(args) -> int:
    """Export from parsed options (``python -m export`` and ``python -m export.embedder`` both land here)."""
    opts = EmbedderExportOptions(out=args.out, run=args.run, model=getattr(args, "model", None), force=args.force,
                                 exporter=args.exporter, opset=args.opset, fuse=not args.no_fuse,
                                 int8=not args.no_int8, int8_isa=args.int8_isa, max_abs_diff=args.max_abs_diff,
                                 max_ndcg_loss=args.max_ndcg_loss, corpus=args.corpus, gate_patents=args.gate_patents)
    try:
        manifest = export_embedder(opts)
    except ParityError as err:
        raise SystemExit(f"error: {err}") from None
    print(json.dumps({"out": args.out, "files": sorted(manifest["files"]), "variants": manifest["variants"],
                      "parity": [c["name"] + (": ok" if c["passed"] else ": failed, dropped")
                                 for c in manifest["parity"]["checks"]]}, indent=2))
    return 0


def cli(argv: list[str] | None = None) -> int:
    """``python -m export.embedder``: export a run or (``--model``) a zero-shot backbone."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m export.embedder", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="embedder run folder")
    src.add_argument("--model", help="backbone id or folder, exported as is (zero-shot)")
    p.add_argument("--out", required=True)
    p.add_argument("--force", action="store_true")
    p.add_argument("--exporter", default=DEFAULT_EXPORTER, choices=EXPORTERS)
    p.add_argument("--opset", type=int, default=None, help="default: the exporter's (17 legacy, 18 dynamo)")
    p.add_argument("--no-fuse", action="store_true", help="keep the graph unfused")
    p.add_argument("--no-int8", action="store_true")
    p.add_argument("--int8-isa", default="avx512_vnni")
    p.add_argument("--max-abs-diff", type=non_negative_float, default=1e-4)
    add_arguments(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return main(args)


if __name__ == "__main__":
    raise SystemExit(cli())
