"""Inference speed and accuracy of an exported phrase matcher against PyTorch, on the validation split.

    python -m benchmarks.inference_speed --run runs/NAME --model models/NAME
    python -m benchmarks.inference_speed --run runs/NAME --model models/NAME --max-rows 2000 --no-append

Backends (CPU, ``--threads`` threads, ``--batch-size`` pairs per batch): PyTorch eager fp32, PyTorch
bf16 autocast (with ``--compile`` also torch.compile in both), ORT fp32, ORT int8 (and ORT fp16 when
exported), OpenVINO fp32 and bf16 on the fp32 graph (where installed; bf16 where the CPU has it); with
a CUDA GPU also PyTorch fp16 vs ORT fp16 with IO binding at ``--gpu-batch-size``.
Every backend scores the same pre-tokenised, length-bucketed inputs of one fold's validation rows
(from the run's oof.csv), so pairs/s is model time only; cold start (process start, imports, load,
first score) is measured in a fresh subprocess. The markdown table is printed and appended to
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks._results import append_results, cold_start, markdown_table, mib

ROOT = Path(__file__).resolve().parents[1]

PAIR = "[('abatement', 'abatement of pollution', 'A47')]"  # the cold-start probe


@dataclass
class Result:
    backend: str
    batch: int
    pairs_s: float
    pearson: float
    max_diff: float
    size_mib: float | None
    cold_s: float | None


def timed_scores(batches: list[tuple[list[int], dict]], inputs, run: Callable[[dict], np.ndarray]) -> tuple[np.ndarray, float]:
    """Scores in row order and pairs/s; the first batch is run once before timing (warm-up)."""
    run(batches[0][1])
    scores = np.zeros(inputs.n_rows, dtype=np.float32)
    start = time.perf_counter()
    for idx, feeds in batches:
        inputs.scatter(idx, run(feeds), scores)
    return scores, inputs.n_rows / (time.perf_counter() - start)


def torch_size(run_dir: Path, fold: int) -> float:
    """Backbone weights on disk plus the fold's trained LoRA/CPC/head state (what PyTorch loads)."""
    from solution.backbone import resolve_model_path

    backbone = Path(resolve_model_path(json.loads((run_dir / "model_config.json").read_text())["backbone"]))
    weights = [p for p in backbone.glob("*") if p.suffix in (".safetensors", ".bin")] if backbone.is_dir() else []
    return mib(*weights, run_dir / f"fold{fold}" / "trainable_state.pt")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="training run folder (runs/NAME): PyTorch side and validation rows")
    p.add_argument("--model", required=True, help="exported model folder (models/NAME) from `python -m export`")
    p.add_argument("--fold", type=int, default=0, help="fold whose graph and validation rows are measured (default 0)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="CPU sequences per batch (default: the scorer's, 64 pair / 16 multi layout)")
    p.add_argument("--gpu-batch-size", type=int, default=None, help="GPU sequences per batch (default: the scorer's)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch and onnxruntime (default 2)")
    p.add_argument("--max-rows", type=int, default=0, help="validation rows to use, whole anchors (0 = all)")
    p.add_argument("--compile", action="store_true", help="add torch.compile rows (fp32, bf16; minutes of compiling)")
    p.add_argument("--title", default="Phrase scorer inference speed", help="section title in RESULTS.md")
    p.add_argument("--no-append", action="store_true", help="print the table only")
    return p.parse_args(argv)


@dataclass
class Bench:
    """What every backend is measured on: one fold's validation rows, pre-tokenised and batched once."""

    args: argparse.Namespace
    run_dir: Path
    model_dir: Path
    manifest: dict
    slot: int  # the fold's position among the exported graphs
    inputs: object  # PhraseInputs
    batches: list
    labels: np.ndarray
    model: object = None  # the merged PyTorch model
    reference: np.ndarray | None = None  # PyTorch fp32 scores: the accuracy reference
    results: list[Result] = field(default_factory=list)

    def scorer(self, variant: str, device: str, batch: int | None, runtime: str = "onnxruntime"):
        from inference import PhraseScorer

        scorer = PhraseScorer.load(self.model_dir, device=device, variant=variant, batch_size=batch,
                                   threads=self.args.threads, runtime=runtime)
        scorer.runners = scorer.runners[self.slot : self.slot + 1]  # this fold's graph only, like the PyTorch side
        return scorer

    def add(self, backend: str, batch: int, scores: np.ndarray, rate: float, size, cold) -> None:
        from solution.phrase.evaluate import pearson

        self.results.append(Result(backend, batch, rate, pearson(scores, self.labels),
                                   float(np.abs(scores - self.reference).max()), size, cold))
        print(f"  {backend}: {rate:.0f} pairs/s, Pearson {self.results[-1].pearson:.4f}", flush=True)


def prepare(args: argparse.Namespace) -> Bench:
    from export.phrase import torch_scores, validation_rows
    from solution.phrase.model import load_trained

    run_dir, model_dir = Path(args.run), Path(args.model)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    if args.fold not in manifest["folds"]:
        raise SystemExit(f"{model_dir}: fold {args.fold} was not exported (has {manifest['folds']})")
    val = validation_rows(run_dir, args.fold, args.max_rows)
    bench = Bench(args, run_dir, model_dir, manifest, manifest["folds"].index(args.fold), None, [],
                  np.asarray(val.columns["score"], dtype=np.float32))
    base = bench.scorer("fp32", "cpu", args.batch_size)
    args.batch_size = base.batch_size
    args.gpu_batch_size = args.gpu_batch_size or base.batch_size * 4
    bench.inputs = base.preprocess(val)
    bench.batches = list(bench.inputs.batches(args.batch_size, pad_id(base), base.input_names))
    print(f"{bench.inputs.n_rows} validation rows of fold {args.fold} in {len(bench.inputs)} "
          f"{base.preprocess.template.layout}-layout sequences; threads {args.threads}", flush=True)
    bench.model, _ = load_trained(run_dir, args.fold, "cpu")
    bench.model.merge_lora()
    bench.reference = torch_scores(bench.model, bench.inputs, pad_id(base), base.input_names, 512)
    return bench


def pad_id(scorer) -> int:
    return scorer.preprocess.encoder.pad_id


def torch_runner(model, precision: str, device: str = "cpu") -> Callable[[dict], np.ndarray]:
    import torch

    def run(feeds: dict) -> np.ndarray:
        t = {k: torch.from_numpy(v).to(device) for k, v in feeds.items()}
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        with torch.inference_mode(), torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = model(**t)
        return out.float().cpu().numpy()

    return run


def torch_cold_start_code(run_dir: Path, fold: int, threads: int) -> str:
    return (
        f"import torch\ntorch.set_num_threads({threads})\nfrom solution.phrase.model import load_trained\n"
        "from inference.cpc import CpcVocab\nfrom inference.phrase.scorer import table_from_pairs\n"
        "from inference.template import InputTemplate\nfrom solution.phrase.data import model_input_names, preprocessor\n"
        "import json, pathlib\n"
        f"run = pathlib.Path({str(run_dir)!r})\nm, tok = load_trained(run, {fold})\nm.merge_lora()\n"
        "t = InputTemplate.from_dict(json.loads((run / 'template.json').read_text()))\n"
        "pre = preprocessor(tok, t, CpcVocab.load(run / 'cpc_vocab.json'), 64)\n"
        f"inputs = pre(table_from_pairs({PAIR}))\n"
        "feeds = inputs.feeds([0], pre.encoder.pad_id, model_input_names(m, t.layout))\n"
        "with torch.inference_mode():\n"
        "    m(**{k: torch.from_numpy(v) for k, v in feeds.items()})")


def measure_compiled(bench: Bench, size_torch: float) -> None:
    """torch.compile (inductor, dynamic shapes) in fp32 and bf16 autocast. Compilation happens on the
    warm-up batch and on the first batch of each new shape class; the rate counts what is left."""
    import torch

    for precision in ("fp32", "bf16"):
        compiled = torch.compile(bench.model, dynamic=True)
        try:
            scores, rate = timed_scores(bench.batches, bench.inputs, torch_runner(compiled, precision))
        except Exception as err:  # a missing compiler or an unsupported op: say so, keep the other rows
            print(f"  torch.compile {precision} failed: {type(err).__name__}: {str(err).splitlines()[0]}", flush=True)
            continue
        bench.add(f"PyTorch torch.compile {precision}" + (" autocast" if precision == "bf16" else ""),
                  bench.args.batch_size, scores, rate, size_torch, None)
        torch._dynamo.reset()


def measure_cpu(bench: Bench) -> None:
    """PyTorch eager fp32 and bf16 autocast, then every exported ONNX variant on onnxruntime's CPU provider,
    then OpenVINO (where installed) on the fp32 graph at each precision this CPU runs natively."""
    args = bench.args
    size_torch = torch_size(bench.run_dir, args.fold)
    cold_torch = cold_start(torch_cold_start_code(bench.run_dir, args.fold, args.threads))
    for precision in ("fp32", "bf16"):
        scores, rate = timed_scores(bench.batches, bench.inputs, torch_runner(bench.model, precision))
        bench.add(f"PyTorch eager {precision}" + (" autocast" if precision == "bf16" else ""), args.batch_size, scores,
                  rate, size_torch, cold_torch if precision == "fp32" else None)
    if args.compile:
        measure_compiled(bench, size_torch)
    from inference.backend.openvino_runner import cpu_precisions

    engines = [("onnxruntime", v) for v in ("fp32", "int8", "fp16") if v in bench.manifest["variants"]]
    for runtime, variant in engines + [("openvino", v) for v in ("fp32", "bf16") if v in cpu_precisions()]:
        scorer = bench.scorer(variant, "cpu", args.batch_size, runtime)  # int8 runs one sequence per pass, as it scores
        batches = bench.batches if scorer.batch_size == args.batch_size else \
            list(bench.inputs.batches(scorer.batch_size, pad_id(scorer), scorer.input_names))
        scores, rate = timed_scores(batches, bench.inputs, scorer.runners[0].run)
        cold = cold_start(f"from inference import PhraseScorer\ns = PhraseScorer.load({str(bench.model_dir)!r}, "
                          f"device='cpu', variant={variant!r}, threads={args.threads}, runtime={runtime!r})\n"
                          f"s.score({PAIR})")
        name = f"ORT {variant} (CPU)" if runtime == "onnxruntime" else f"OpenVINO {variant} (CPU)"
        graph = bench.manifest["variants"]["fp32" if runtime == "openvino" else variant][bench.slot]
        bench.add(name, scorer.batch_size, scores, rate, mib(bench.model_dir / graph), cold)


def measure_gpu(bench: Bench) -> None:
    """On a lent GPU: PyTorch fp16 autocast vs ORT fp16 with IO binding."""
    args = bench.args
    scorer = bench.scorer("fp32", "cpu", args.gpu_batch_size)
    gpu_batches = list(bench.inputs.batches(args.gpu_batch_size, pad_id(scorer), scorer.input_names))
    bench.model.to("cuda")
    scores, rate = timed_scores(gpu_batches, bench.inputs, torch_runner(bench.model, "fp16", "cuda"))
    bench.add("PyTorch fp16 autocast (CUDA)", args.gpu_batch_size, scores, rate, torch_size(bench.run_dir, args.fold), None)
    if "fp16" not in bench.manifest["variants"]:
        return
    try:
        scorer = bench.scorer("fp16", "cuda", args.gpu_batch_size)
    except RuntimeError as err:
        print(f"  ORT fp16 (CUDA) skipped: {err}")
        return
    scores, rate = timed_scores(gpu_batches, bench.inputs, scorer.runners[0].run)
    bench.add("ORT fp16 (CUDA, IO binding)", args.gpu_batch_size, scores, rate,
              mib(bench.model_dir / bench.manifest["variants"]["fp16"][bench.slot]), None)


def write_table(bench: Bench, argv: list[str] | None) -> None:
    args, results = bench.args, bench.results
    base_rate, base_pearson = results[0].pairs_s, results[0].pearson
    rows = [[r.backend, r.batch, f"{r.pairs_s:.0f}", f"{r.pairs_s / base_rate:.2f}x", r.pearson,
             f"{r.pearson - base_pearson:+.4f}", f"{r.max_diff:.1e}",
             "" if r.size_mib is None else f"{r.size_mib:.1f}", "" if r.cold_s is None else f"{r.cold_s:.1f}"]
            for r in results]
    table = markdown_table(["backend", "batch", "pairs/s", "vs torch fp32", "Pearson", "Δ Pearson", "max abs Δ vs torch fp32",
                            "size MiB", "cold start s"], rows)
    layout = bench.manifest.get("layout", "pair")
    notes = (f"{layout} layout; fold {args.fold}, {bench.inputs.n_rows} validation rows in {len(bench.inputs)} sequences, "
             f"{args.threads} threads; batch = sequences per forward pass; pairs/s is model time on pre-tokenised "
             "length-bucketed batches; cold start = fresh process to first score")
    command = "python -m benchmarks.inference_speed " + " ".join(sys.argv[1:] if argv is None else argv)
    append_results(args.title, table, command, notes, append=not args.no_append)


def main(argv: list[str] | None = None) -> None:
    import torch

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    bench = prepare(args)
    measure_cpu(bench)
    if torch.cuda.is_available():
        measure_gpu(bench)
    write_table(bench, argv)


if __name__ == "__main__":
    main()
