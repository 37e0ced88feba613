"""Embedder encoding speed: PyTorch (fp32, bf16 autocast) against the exported ONNX graphs (unfused fp32,
fused fp32, fused int8 on onnxruntime; the fused fp32 graph on OpenVINO in fp32 and, where the CPU has it,
bf16), docs/s on the same patents in one process, with title -> abstract nDCG@10 of each.

    python -m benchmarks.embedder_speed [--model sentence-transformers/all-MiniLM-L6-v2] [--docs 256]

The model is exported here (zero-shot: no run needed) twice: with the defaults (fused graph, int8 kept
only if its nDCG@10 on the gate's held-out patents stays within 0.005) and unfused. The int8 row is
timed even when the gate drops the graph (quantised here the way the export does), so the table says
what the gate gave up. Documents are title + abstract at 256 tokens, queries the titles; the nDCG@10
is that of the titles searching among their own abstracts. Modes are timed in turn, three times,
interleaved; the median counts. Cold start: a fresh interpreter's seconds to its first embedding
(imports, load, one text), as in benchmarks/inference_speed.py.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks._results import append_results, cold_start, markdown_table, mib

TEXT = "['A drug-coated balloon catheter for angioplasty.']"  # the cold-start probe


def torch_cold_start_code(model: str, threads: int) -> str:
    return (f"import torch\ntorch.set_num_threads({threads})\n"
            "from solution.embedder.model import EmbedderConfig, build_encoder, encode_texts\n"
            f"enc, tok = build_encoder(EmbedderConfig(backbone={model!r}, lora=False))\nenc.eval()\n"
            f"encode_texts(enc, tok, {TEXT}, 256, 1, 'cpu', 'fp32')")


def onnx_cold_start_code(graph: Path, tokenizer: Path, variant: str, runtime: str, threads: int) -> str:
    return (f"from inference.retrieval.encoder import OnnxEmbedder\n"
            f"e = OnnxEmbedder.load({str(graph)!r}, {str(tokenizer)!r}, 256, variant={variant!r}, threads={threads}, "
            f"runtime={runtime!r})\n"
            f"e.encode({TEXT})")


def main(argv: list[str] | None = None) -> None:
    import torch

    from export.embedder import EmbedderExportOptions, export_embedder
    from export.variants import quantize_int8
    from inference.backend.openvino_runner import cpu_precisions
    from inference.retrieval.corpus import read_patents
    from inference.retrieval.encoder import OnnxEmbedder
    from solution.backbone import DEFAULT_MODEL, resolve_model_path
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
        fused, unfused = Path(tmp) / "fused", Path(tmp) / "unfused"
        manifest = export_embedder(EmbedderExportOptions(fused, model=args.model))
        export_embedder(EmbedderExportOptions(unfused, model=args.model, fuse=False, int8=False))
        int8_kept = "model.int8.onnx" in manifest["files"]
        int8 = fused / "model.int8.onnx" if int8_kept else quantize_int8(fused / "model.onnx", Path(tmp) / "int8.onnx")
        graphs = {"onnxruntime fp32 (unfused)": (unfused / "model.onnx", "fp32", "onnxruntime"),
                  "onnxruntime fp32 (fused)": (fused / "model.onnx", "fp32", "onnxruntime"),
                  "onnxruntime int8 (fused)" + ("" if int8_kept else ", dropped by the gate"): (int8, "int8", "onnxruntime")}
        graphs |= {f"OpenVINO {v} (fused fp32 graph)": (fused / "model.onnx", v, "openvino") for v in cpu_precisions()}
        modes = {f"PyTorch {precision}": (lambda texts, n, precision=precision: encode_texts(
                    encoder, tokenizer, texts, n, args.batch_size, "cpu", precision)) for precision in ("fp32", "bf16")}
        for name, (graph, variant, runtime) in graphs.items():
            by_length = {n: OnnxEmbedder.load(graph, fused / "tokenizer.json", n, variant=variant, runtime=runtime)
                         for n in (64, 256)}
            modes[name] = lambda texts, n, m=by_length: m[n].encode(texts, args.batch_size)
        threads = torch.get_num_threads()
        weights = [p for p in Path(resolve_model_path(args.model)).glob("*") if p.suffix in (".safetensors", ".bin")]
        size = {"PyTorch fp32": mib(*weights), "PyTorch bf16": mib(*weights)} | {
            name: mib(graph) for name, (graph, _, _) in graphs.items()}
        cold = {"PyTorch fp32": cold_start(torch_cold_start_code(args.model, threads))} | {
            name: cold_start(onnx_cold_start_code(graph, fused / "tokenizer.json", variant, runtime, threads))
            for name, (graph, variant, runtime) in graphs.items()}
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
    rows = [[name, f"{len(docs) / statistics.median(t):.1f}", f"{base / statistics.median(t):.2f}x", ndcg[name],
             f"{size[name]:.1f}", f"{cold[name]:.1f}" if name in cold else ""] for name, t in times.items()]
    table = markdown_table(["mode", "docs/s", "vs PyTorch fp32", "t2a nDCG@10", "size MiB", "cold start s"], rows)
    gate = "; ".join(f"nDCG@10 loss {c['loss']:+.4f}" + (" (int8 dropped)" if c["dropped"] else "")
                     for c in manifest["parity"]["checks"] if c["name"] == "int8")
    append_results("Embedder encoding speed: PyTorch vs onnxruntime (unfused fp32, fused fp32, fused int8) and OpenVINO",
                   table,
                   append=not args.no_append,
                   notes=f"{args.model} zero-shot, {len(docs)} title+abstract docs at 256 tokens, batch {args.batch_size} "
                         f"(int8: one text per pass, per-row deterministic), {threads} threads, median "
                         f"of 3 interleaved passes; export int8 gate: {gate}; fused ops: {manifest.get('fused_operators')}")


if __name__ == "__main__":
    main()
