"""Inference speed and accuracy of an exported phrase matcher against PyTorch, on the validation split.

    python benchmarks/inference_speed.py --run runs/NAME --model models/NAME
    python benchmarks/inference_speed.py --run runs/NAME --model models/NAME --max-rows 2000 --no-append

Backends (CPU, ``--threads`` threads, ``--batch-size`` pairs per batch): PyTorch eager fp32, PyTorch
bf16 autocast, ORT fp32, ORT int8 (and ORT fp16 when exported); with a CUDA GPU also PyTorch fp16 vs
ORT fp16 with IO binding at ``--gpu-batch-size``. Every backend scores the same pre-tokenised,
length-bucketed inputs of one fold's validation rows (from the run's oof.csv), so pairs/s is model time
only; cold start (process start, imports, load, first score) is measured in a fresh subprocess. The
markdown table is printed and appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import append_results, markdown_table  # noqa: E402


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


def cold_start(code: str) -> float:
    """Seconds from process start to the first score, in a fresh interpreter."""
    wrapped = f"import time; t0 = time.perf_counter()\n{code}\nprint('COLD', time.perf_counter() - t0)"
    out = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    if out.returncode != 0:
        print(out.stderr[-2000:], file=sys.stderr)
        return float("nan")
    return float(out.stdout.split("COLD")[-1])


def mib(*paths: Path) -> float:
    return sum(p.stat().st_size for p in paths if p.is_file()) / 2**20


def torch_size(run_dir: Path, fold: int) -> float:
    """Backbone weights on disk plus the fold's trained LoRA/CPC/head state (what PyTorch loads)."""
    from solution.backbone import resolve_model_path

    backbone = Path(resolve_model_path(json.loads((run_dir / "model_config.json").read_text())["backbone"]))
    weights = [p for p in backbone.glob("*") if p.suffix in (".safetensors", ".bin")] if backbone.is_dir() else []
    return mib(*weights, run_dir / f"fold{fold}" / "trainable_state.pt")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="training run folder (runs/NAME): PyTorch side and validation rows")
    p.add_argument("--model", required=True, help="exported model folder (models/NAME) from `python -m export`")
    p.add_argument("--fold", type=int, default=0, help="fold whose graph and validation rows are measured (default 0)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="CPU sequences per batch (default: the scorer's, 64 pair / 16 multi layout)")
    p.add_argument("--gpu-batch-size", type=int, default=None, help="GPU sequences per batch (default: the scorer's)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch and onnxruntime (default 2)")
    p.add_argument("--max-rows", type=int, default=0, help="validation rows to use, whole anchors (0 = all)")
    p.add_argument("--title", default="Phrase scorer inference speed", help="section title in RESULTS.md")
    p.add_argument("--no-append", action="store_true", help="print the table only")
    args = p.parse_args(argv)

    import torch

    from export.phrase import torch_scores, validation_rows
    from inference import PhraseScorer
    from solution.phrase.evaluate import pearson
    from solution.phrase.model import load_trained

    torch.set_num_threads(args.threads)
    run_dir, model_dir = Path(args.run), Path(args.model)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    if args.fold not in manifest["folds"]:
        raise SystemExit(f"{model_dir}: fold {args.fold} was not exported (has {manifest['folds']})")
    slot = manifest["folds"].index(args.fold)
    val = validation_rows(run_dir, args.fold, args.max_rows)
    labels = np.asarray(val.columns["score"], dtype=np.float32)

    def scorer_for(variant: str, device: str, batch: int):
        scorer = PhraseScorer.load(model_dir, device=device, variant=variant, batch_size=batch, threads=args.threads)
        scorer.runners = scorer.runners[slot : slot + 1]  # this fold's graph only, like the PyTorch side
        return scorer

    base = scorer_for("fp32", "cpu", args.batch_size)
    args.batch_size = base.batch_size
    args.gpu_batch_size = args.gpu_batch_size or base.batch_size * 4
    inputs = base.preprocess(val)
    pad = base.preprocess.encoder.pad_id
    names = base.input_names
    layout = base.preprocess.template.layout
    print(f"{inputs.n_rows} validation rows of fold {args.fold} in {len(inputs)} {layout}-layout sequences; "
          f"threads {args.threads}", flush=True)

    model, _ = load_trained(run_dir, args.fold, "cpu")
    model.merge_lora()
    results: list[Result] = []
    reference = torch_scores(model, inputs, pad, names, 512)  # accuracy reference: PyTorch fp32

    def add(backend: str, batch: int, scores: np.ndarray, rate: float, size, cold) -> None:
        results.append(Result(backend, batch, rate, pearson(scores, labels), float(np.abs(scores - reference).max()),
                              size, cold))
        print(f"  {backend}: {rate:.0f} pairs/s, Pearson {results[-1].pearson:.4f}", flush=True)

    batches = list(inputs.batches(args.batch_size, pad, names))

    def torch_run(precision: str, device: str = "cpu"):
        def run(feeds: dict) -> np.ndarray:
            t = {k: torch.from_numpy(v).to(device) for k, v in feeds.items()}
            dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
            with torch.inference_mode(), torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
                out = model(**t)
            return out.float().cpu().numpy()
        return run

    size_torch = torch_size(run_dir, args.fold)
    pair = "[('abatement', 'abatement of pollution', 'A47')]"
    cold_torch = cold_start(
        f"import torch\ntorch.set_num_threads({args.threads})\nfrom solution.phrase.model import load_trained\n"
        "from inference.cpc import CpcVocab\nfrom inference.phrase.scorer import table_from_pairs\n"
        "from inference.template import InputTemplate\nfrom solution.phrase.data import model_input_names, preprocessor\n"
        "import json, pathlib\n"
        f"run = pathlib.Path({str(run_dir)!r})\nm, tok = load_trained(run, {args.fold})\nm.merge_lora()\n"
        "t = InputTemplate.from_dict(json.loads((run / 'template.json').read_text()))\n"
        "pre = preprocessor(tok, t, CpcVocab.load(run / 'cpc_vocab.json'), 64)\n"
        f"inputs = pre(table_from_pairs({pair}))\n"
        "feeds = inputs.feeds([0], pre.encoder.pad_id, model_input_names(m, t.layout))\n"
        "with torch.inference_mode():\n"
        "    m(**{k: torch.from_numpy(v) for k, v in feeds.items()})")
    for precision in ("fp32", "bf16"):
        scores, rate = timed_scores(batches, inputs, torch_run(precision))
        add(f"PyTorch eager {precision}" + (" autocast" if precision == "bf16" else ""), args.batch_size, scores, rate,
            size_torch, cold_torch if precision == "fp32" else None)

    for variant in [v for v in ("fp32", "int8", "fp16") if v in manifest["variants"]]:
        scorer = scorer_for(variant, "cpu", args.batch_size)
        runner = scorer.runners[0]
        scores, rate = timed_scores(batches, inputs, runner.run)
        cold = cold_start(f"from inference import PhraseScorer\ns = PhraseScorer.load({str(model_dir)!r}, device='cpu', "
                          f"variant={variant!r}, threads={args.threads})\ns.score({pair})")
        add(f"ORT {variant} (CPU)", args.batch_size, scores, rate, mib(model_dir / manifest["variants"][variant][slot]), cold)

    if torch.cuda.is_available():  # on a lent GPU: PyTorch fp16 vs ORT fp16 with IO binding
        gpu_batches = list(inputs.batches(args.gpu_batch_size, pad, names))
        model.to("cuda")
        scores, rate = timed_scores(gpu_batches, inputs, torch_run("fp16", "cuda"))
        add("PyTorch fp16 autocast (CUDA)", args.gpu_batch_size, scores, rate, size_torch, None)
        if "fp16" in manifest["variants"]:
            try:
                scorer = scorer_for("fp16", "cuda", args.gpu_batch_size)
            except RuntimeError as err:
                print(f"  ORT fp16 (CUDA) skipped: {err}")
            else:
                scores, rate = timed_scores(gpu_batches, inputs, scorer.runners[0].run)
                add("ORT fp16 (CUDA, IO binding)", args.gpu_batch_size, scores, rate,
                    mib(model_dir / manifest["variants"]["fp16"][slot]), None)

    base_rate, base_pearson = results[0].pairs_s, results[0].pearson
    rows = [[r.backend, r.batch, f"{r.pairs_s:.0f}", f"{r.pairs_s / base_rate:.2f}x", r.pearson,
             f"{r.pearson - base_pearson:+.4f}", f"{r.max_diff:.1e}",
             "" if r.size_mib is None else f"{r.size_mib:.1f}", "" if r.cold_s is None else f"{r.cold_s:.1f}"]
            for r in results]
    table = markdown_table(["backend", "batch", "pairs/s", "vs torch fp32", "Pearson", "Δ Pearson", "max abs Δ vs torch fp32",
                            "size MiB", "cold start s"], rows)
    notes = (f"{layout} layout; fold {args.fold}, {inputs.n_rows} validation rows in {len(inputs)} sequences, "
             f"{args.threads} threads; batch = sequences per forward pass; pairs/s is model time on pre-tokenised "
             "length-bucketed batches; cold start = fresh process to first score")
    command = "python benchmarks/inference_speed.py " + " ".join(sys.argv[1:] if argv is None else argv)
    append_results(args.title, table, command, notes, append=not args.no_append)


if __name__ == "__main__":
    main()
