"""Embedder encoding speed: PyTorch (fp32, bf16 autocast) against the exported ONNX graphs (fp32, fused
int8), docs/s on the same patents in one process, with title -> abstract nDCG@10 of each.

    python benchmarks/embedder_speed.py [--model sentence-transformers/all-MiniLM-L6-v2] [--docs 256]

The model is exported here (zero-shot: no run needed) with the defaults (fused graph, int8 kept only
if its nDCG@10 stays within 0.005). Documents are title + abstract at 256 tokens, queries the titles;
the nDCG@10 is that of the held-out titles searching among their own abstracts. Modes are timed in
turn, three times, interleaved; the median counts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._results import append_results, markdown_table  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    import torch

    from export.embedder import EmbedderExportOptions, export_embedder
    from inference.retrieval.corpus import read_patents
    from inference.retrieval.encoder import EmbedderModel
    from solution.backbone import DEFAULT_MODEL
    from solution.embedder.metrics import ir_metrics
    from solution.embedder.model import EmbedderConfig, build_encoder, encode_texts
    from solution.runtime import tune_malloc

    tune_malloc()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--corpus", default="data/patents/a61_patents.csv")
    p.add_argument("--docs", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args(argv)

    patents = read_patents(args.corpus)[: args.docs]
    docs, titles = [x.view("title+abstract") for x in patents], [x.title for x in patents]
    qrels = [{i: 1.0} for i in range(len(patents))]
    encoder, tokenizer = build_encoder(EmbedderConfig(backbone=args.model, lora=False))
    encoder.eval()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = export_embedder(EmbedderExportOptions(Path(tmp) / "model", model=args.model))
        onnx = {name: EmbedderModel.load(Path(tmp) / "model", variant=name) for name in ("fp32", "int8")
                if name == "fp32" or "model.int8.onnx" in manifest["files"]}
        modes = {f"PyTorch {precision}": (lambda texts, n, precision=precision: encode_texts(
                    encoder, tokenizer, texts, n, args.batch_size, "cpu", precision)) for precision in ("fp32", "bf16")}
        modes.update({f"onnxruntime {name}": (lambda texts, n, m=m: m.encode_docs(texts, args.batch_size)
                                              if n > 64 else m.encode_queries(texts, args.batch_size))
                      for name, m in onnx.items()})
        times: dict[str, list[float]] = {name: [] for name in modes}
        ndcg = {}
        for name, encode in modes.items():  # warm-up and quality
            ndcg[name] = ir_metrics(encode(titles, 64) @ encode(docs, 256).T, qrels, ks=(1,))["ndcg@10"]
        for _ in range(3):
            for name, encode in modes.items():
                start = time.perf_counter()
                encode(docs, 256)
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["PyTorch fp32"])
    rows = [[name, f"{len(docs) / statistics.median(t):.1f}", f"{base / statistics.median(t):.2f}x", ndcg[name]]
            for name, t in times.items()]
    table = markdown_table(["mode", "docs/s", "vs PyTorch fp32", "t2a nDCG@10"], rows)
    gate = "; ".join(f"nDCG@10 loss {c['loss']:+.4f}" + (" (int8 dropped)" if c["dropped"] else "")
                     for c in manifest["parity"]["checks"] if c["name"] == "int8")
    append_results("Embedder encoding speed: PyTorch vs onnxruntime (fused fp32, fused int8)", table,
                   append=not args.no_append,
                   notes=f"{args.model} zero-shot, {len(docs)} title+abstract docs at 256 tokens, batch {args.batch_size} "
                         f"(int8: one text per pass, per-row deterministic), {torch.get_num_threads()} threads, median "
                         f"of 3 interleaved passes; export int8 gate: {gate}; fused ops: {manifest.get('fused_operators')}")


if __name__ == "__main__":
    main()
