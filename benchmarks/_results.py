"""What the benchmarks share: a table appended to benchmarks/RESULTS.md with the machine, date, commit and
exact command, and the few measuring helpers more than one script uses (the training stack imported
only inside the helpers that need it)."""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from inference.backend.cores import usable_cores

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
ROOT = RESULTS.parents[1]


# CPU flags that decide which precision is fast here (bf16 is emulated, ~2x slower, without the last three)
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == (platform.processor() or platform.machine()):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                present = set(line.split(":", 1)[1].split())
                flags = [f for f in SPEED_FLAGS if f in present]
    except OSError:
        pass
    cpu += f" (flags: {' '.join(flags) or 'none of ' + ' '.join(SPEED_FLAGS)})"
    cores = usable_cores()
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = ""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            gpu = f", GPU {out.stdout.strip().splitlines()[0]}"
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{cpu}, {cores} cores, {mem_gb:.0f} GiB{gpu}"


def commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=RESULTS.parent, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=RESULTS.parent, timeout=10).stdout.strip()
        return f"{sha}{' (+ uncommitted changes)' if dirty else ''}" or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def command_line() -> str:
    """The command as typed: ``python -m benchmarks.NAME ...`` for a benchmark run as a module."""
    script = Path(sys.argv[0])
    if script.suffix == ".py" and script.resolve().parent == RESULTS.parent:
        return " ".join(["python", "-m", f"benchmarks.{script.stem}", *map(shlex.quote, sys.argv[1:])])
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def append_results(title: str, table_md: str, command: str | None = None, notes: str = "", append: bool = True) -> str:
    """Print one section and append it to RESULTS.md (``append=False``: print only); returns the text."""
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = (f"\n## {title}\n\n- machine: {machine()}\n- date: {stamp}\n- commit: {commit()}\n"
            f"- command: `{command or command_line()}`\n" + (f"- notes: {notes}\n" if notes else "") + f"\n{table_md.strip()}\n")
    print(text)
    if not append:
        return text
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nAppended by the scripts in benchmarks/; newest at the bottom.\n")
    with open(RESULTS, "a", encoding="utf-8") as f:
        f.write(text)
    return text


def markdown_table(header: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# ---- measuring helpers used by more than one benchmark ----

# The rows without a "config" of their own were measured on configs/embedder-cpu.toml when the trainer's defaults
# were these (they are the retrieval preset's now): pinned, so those rows still train what they measured
AS_MEASURED = {"recipe": "mqg", "weight_align": 0.5, "weight_cpc": 1.0, "lora_dropout": 0.1}


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


def task_ndcg(task, stemmer: str | None = "english", **params) -> tuple[float, float]:
    """(nDCG@10, seconds to index the corpus and score every query); ``params``: BM25's k1, b, pair_weight."""
    from inference.retrieval.bm25 import Bm25Index
    from solution.embedder.metrics import ir_metrics

    start = time.perf_counter()
    bm25 = Bm25Index.build(task.corpus, stemmer=stemmer, **params)
    scores = np.stack([bm25.scores(q) for q in task.queries])
    seconds = time.perf_counter() - start
    return ir_metrics(scores, task.qrels)["ndcg@10"], seconds


def fused_ndcg(sparse: np.ndarray, dense: np.ndarray, qrels: list, alpha: float) -> np.ndarray:
    """nDCG@10 of each query under the convex fusion with weight ``alpha`` on the dense scores."""
    from inference.retrieval.fusion import convex_scores
    from solution.embedder.metrics import ir_metrics

    fused = np.stack([convex_scores(s, d, alpha) for s, d in zip(sparse, dense)])
    return np.array([ir_metrics(fused[i:i + 1], qrels[i:i + 1])["ndcg@10"] for i in range(len(qrels))])


def heldout_dense(run_dir: Path, device: str, max_length: int | None = None):
    """(the run's held-out title -> abstract task over the held-out abstracts only, {"fine-tuned" | "zero-shot":
    query x document cosine matrix}), documents cut at ``max_length`` tokens (None: the run's own)."""
    from solution.embedder.evaluate import EvalOptions, build_tasks, heldout_patents, torch_encoder
    from solution.embedder.model import EmbedderConfig, build_encoder, load_run_encoder

    opts = EvalOptions(max_patents=0, distractors=0, device=device, max_length=max_length)
    patents, heldout = heldout_patents(opts, run_dir)
    task = build_tasks(patents, heldout, opts)[0]  # title2abstract
    ft, tok, cfg = load_run_encoder(run_dir, device)
    zs, zs_tok = build_encoder(EmbedderConfig(backbone=cfg.backbone, lora=False))
    dense = {}
    for name, (enc, t, q_len) in {"fine-tuned": (ft, tok, cfg.query_max_length),
                                  "zero-shot": (zs.eval(), zs_tok, opts.query_max_length)}.items():
        queries = torch_encoder(enc, t, q_len, opts)(task.queries)
        dense[name] = queries @ torch_encoder(enc, t, opts.doc_tokens(cfg), opts)(task.corpus).T
    return task, dense


def runs_parser(description: str | None) -> argparse.ArgumentParser:
    """The options of a benchmark that reads trained runs' held-out splits."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", type=Path, required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-append", action="store_true", help="print the table only")
    return p


def phrase_validation(run: Path, model: Path, fold: int, max_rows: int):
    """(fp32 scorer, the fold's validation inputs, their labels, pad id, the fold's fp32 graph) of an exported
    phrase model, for benchmarks that run its graphs on held-out rows themselves."""
    from export.phrase import validation_rows
    from inference import PhraseScorer

    base = PhraseScorer.load(model, device="cpu", variant="fp32", runtime="onnxruntime")
    val = validation_rows(Path(run), fold, max_rows)
    labels = np.asarray(val.columns["score"], dtype=np.float32)
    return (base, base.preprocess(val), labels, base.preprocess.encoder.pad_id,
            Path(model) / base.manifest["variants"]["fp32"][fold])


def timed_scores(runner, inputs, pad: int, batch: int) -> tuple[np.ndarray, float]:
    """(scores in row order, pairs/s) of one pass over ``inputs`` after a warm-up batch."""
    batches = list(inputs.batches(batch, pad, runner.input_names))
    runner.run(batches[0][1])
    scores = np.zeros(inputs.n_rows, dtype=np.float32)
    start = time.perf_counter()
    for idx, feeds in batches:
        inputs.scatter(idx, runner.run(feeds), scores)
    return scores, inputs.n_rows / (time.perf_counter() - start)
