"""The convex hybrid's dense weight (alpha), read over several runs' own held-out splits.

    python -m benchmarks.hybrid_alpha --runs runs/probe-preset-retrieval runs/probe-preset-retrieval-s7 ...

Each run's held-out titles search that split's held-out abstracts only (the retrieval issue's hybrid
setting: ``solution.evaluate embedder --distractors 0 --max-patents 0``). For the fine-tuned model
and the zero-shot backbone, fused with the default BM25 (Snowball-stemmed, ``DEFAULT_K1``): nDCG@10 per alpha, and a
choice that never sees the queries it is scored on (alpha picked on one half of a split's queries,
scored on the other, both ways). Dense scores and BM25 are computed once per run; fusion is numpy.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

from benchmarks._results import append_results, fused_ndcg, heldout_dense, markdown_table, runs_parser
from inference.retrieval.bm25 import DEFAULT_K1
from inference.retrieval.fusion import DEFAULT_ALPHA
from solution.embedder.evaluators.ir import bm25_matrix

ALPHAS = tuple(sorted({0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, DEFAULT_ALPHA}))  # the default is always a column


def cross_chosen(per_alpha: dict[float, np.ndarray], seed: int) -> tuple[float, list[float]]:
    """nDCG@10 when each half of the queries is scored at the alpha that was best on the other half."""
    n = len(next(iter(per_alpha.values())))
    half = np.random.default_rng(seed).permutation(n) < n // 2
    total, chosen = 0.0, []
    for pick, score in ((half, ~half), (~half, half)):
        best = max(per_alpha, key=lambda a: per_alpha[a][pick].mean())
        chosen.append(best)
        total += per_alpha[best][score].sum()
    return total / n, chosen


def run_scores(run_dir: Path, device: str) -> dict[str, dict[float, np.ndarray]]:
    task, dense = heldout_dense(run_dir, device)
    sparse = bm25_matrix(task)
    return {name: {a: fused_ndcg(sparse, matrix, task.qrels, a) for a in ALPHAS} for name, matrix in dense.items()}


def main(argv: list[str] | None = None) -> None:
    args = runs_parser(__doc__).parse_args(argv)

    scores = {run: run_scores(run, args.device) for run in args.runs}
    rows, notes = [], []
    for system in ("fine-tuned", "zero-shot"):
        per_run = [scores[run][system] for run in args.runs]
        cv = [cross_chosen(s, seed=i) for i, s in enumerate(per_run)]
        rows.append([system, *(f"{statistics.mean(float(s[a].mean()) for s in per_run):.4f}" for a in ALPHAS),
                     f"{statistics.mean(c for c, _ in cv):.4f}"])
        notes.append(f"{system}: alphas chosen by the halves {[a for _, pair in cv for a in pair]}, per run at "
                     f"{DEFAULT_ALPHA:g} (the default) / chosen: "
                     + ", ".join(f"{float(s[DEFAULT_ALPHA].mean()):.4f} / {c:.4f}" for s, (c, _) in zip(per_run, cv)))
    table = markdown_table(["dense system + BM25 (nDCG@10, mean over runs)", *(f"alpha {a:g}" for a in ALPHAS),
                            "alpha chosen on the other half"], rows)
    append_results("Convex hybrid: the dense weight alpha over held-out splits", table, append=not args.no_append,
                   notes=f"runs {', '.join(r.name for r in args.runs)}, each on its own held-out split (all held-out "
                         f"titles searching the held-out abstracts only); BM25 Snowball-stemmed, k1 {DEFAULT_K1:g}; alpha 1.0 "
                         f"is dense alone; " + "; ".join(notes))


if __name__ == "__main__":
    main()
