"""Search at 1M vectors: exact memory-mapped scan vs FAISS HNSW vs FAISS IVF (build, RSS, latency, recall).

    python -m benchmarks.ann_search [--docs 1000000] [--dim 384] [--queries 500]

The vectors are synthetic but shaped like embeddings: unit vectors around 20,000 centres (uniform
noise has no neighbourhoods, which makes every ANN look bad and no real corpus looks like it). They
are written once to a .npy file and memory-mapped, as `inference index` stores them. Each method runs
in its own process (so its peak RSS is its own), single queries one at a time (p50/p95 latency, the
number a search box sees), with FAISS on the machine's cores. recall@10 is against the exact top 10.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks._results import append_results, markdown_table
from inference.retrieval.vector_search import ann_top_k, build_ann, exact_top_k, load_ann, save_ann


def make_vectors(path: Path, n: int, dim: int, seed: int, centres: int = 20_000, block: int = 100_000) -> None:
    """``n`` unit vectors around the same ``centres`` whatever ``seed`` (documents and queries share them)."""
    centre = np.random.default_rng(0).standard_normal((centres, dim)).astype(np.float32)
    rng = np.random.default_rng(seed + 1)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for start in range(0, n, block):
        rows = min(block, n - start)
        x = centre[rng.integers(0, centres, rows)] + 0.7 * rng.standard_normal((rows, dim)).astype(np.float32)
        out[start:start + rows] = x / np.linalg.norm(x, axis=1, keepdims=True)
    out.flush()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_method(method: str, data: Path, queries: Path, work: Path) -> dict:
    """One method in this process: build (or load), then single-query latency; returns its numbers."""
    emb = np.load(data, mmap_mode="r")
    q = np.load(queries)
    out: dict = {"method": method}
    if method == "exact":
        search = lambda v: exact_top_k(emb, v, 10)  # noqa: E731
        out["build_s"] = 0.0
    else:
        start = time.perf_counter()
        index, params = build_ann(emb, method)
        out["build_s"] = time.perf_counter() - start
        save_ann(index, work / f"{method}.faiss")
        del index
        out["file_mib"] = (work / f"{method}.faiss").stat().st_size / 2**20
        index = load_ann(work / f"{method}.faiss", params)
        out["params"] = params
        search = lambda v: ann_top_k(index, v, 10)  # noqa: E731
    search(q[:1])  # warm-up: first touch of the pages / structures
    times, found = [], []
    for row in q:
        start = time.perf_counter()
        idx, _ = search(row[None, :])
        times.append(time.perf_counter() - start)
        found.append(idx[0].tolist())
    out["p50_ms"], out["p95_ms"] = (float(np.percentile(times, p) * 1000) for p in (50, 95))
    out["found"] = found
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--work", default="/tmp/ann-bench", help="folder for the vectors and the built indexes")
    p.add_argument("--methods", nargs="+", default=["exact", "hnsw", "ivf"])
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args(argv)
    work = Path(args.work)
    data, queries = work / f"vectors-{args.docs}x{args.dim}.npy", work / f"queries-{args.queries}.npy"
    if args.child:
        print(json.dumps(run_method(args.child, data, queries, work)))
        return
    work.mkdir(parents=True, exist_ok=True)
    if not data.exists():
        make_vectors(data, args.docs, args.dim, seed=0)
    make_vectors(queries, args.queries, args.dim, seed=1)  # other draws around the same centres
    emb = np.load(data, mmap_mode="r")
    truth, _ = exact_top_k(emb, np.load(queries), 10)
    rows = []
    for method in args.methods:
        child = subprocess.run([sys.executable, "-m", "benchmarks.ann_search", "--docs", str(args.docs), "--dim",
                                str(args.dim), "--queries", str(args.queries), "--work", str(work), "--child", method],
                               capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
        r = json.loads(child.stdout.strip().splitlines()[-1])
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(r["found"], truth.tolist())])
        rows.append([method, json.dumps(r.get("params", {})) if r.get("params") else "-", f"{r['build_s']:.1f}",
                     f"{r['peak_rss_mib']:.0f}", f"{r.get('file_mib', 0):.0f}", f"{r['p50_ms']:.2f}",
                     f"{r['p95_ms']:.2f}", f"{recall:.4f}"])
        print(rows[-1], flush=True)
    table = markdown_table(["method", "search params", "build s", "peak RSS MiB", "structure file MiB", "p50 ms",
                            "p95 ms", "recall@10 vs exact"], rows)
    append_results(f"Dense search at {args.docs:,} vectors: exact memory-mapped scan vs FAISS HNSW / IVF", table,
                   append=not args.no_append,
                   notes=f"{args.docs:,} x {args.dim} float32 unit vectors around 20,000 centres (synthetic, "
                         f"embedding-shaped), {args.queries} single queries one at a time, each method in its own "
                         "process (RSS includes the page-cached memory map it touched)")


if __name__ == "__main__":
    main()
