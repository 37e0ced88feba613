"""BM25 with and without word pairs, alone and in the convex hybrid, on several runs' own held-out splits.

    python -m benchmarks.bm25_pairs --runs runs/pr-s42 runs/pr-s7 runs/pr-s1 runs/pr-s2 runs/pr-s3

The retrieval issue's hybrid setting (``solution.evaluate embedder --distractors 0 --max-patents 0``):
each run's held-out titles search that split's held-out abstracts only. For words only (pair weight 0)
and the default pair weight: BM25 alone, and the convex hybrid at the default dense weight with the
fine-tuned model and with the zero-shot backbone. Dense scores are computed once per run.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from benchmarks._results import append_results, fused_ndcg, heldout_dense, markdown_table, runs_parser
from inference.retrieval.bm25 import DEFAULT_PAIR_WEIGHT
from inference.retrieval.fusion import DEFAULT_ALPHA
from solution.embedder.evaluators.ir import bm25_matrix
from solution.embedder.metrics import ir_metrics

WEIGHTS = (0.0, DEFAULT_PAIR_WEIGHT)


def run_ndcg(run_dir: Path, device: str) -> dict[str, float]:
    """nDCG@10 of each system on ``run_dir``'s held-out split."""
    task, dense = heldout_dense(run_dir, device)
    out = {f"{name} dense": ir_metrics(matrix, task.qrels)["ndcg@10"] for name, matrix in dense.items()}
    for weight in WEIGHTS:
        sparse = bm25_matrix(task, pair_weight=weight)
        out[f"BM25, pair weight {weight:g}"] = ir_metrics(sparse, task.qrels)["ndcg@10"]
        for name, matrix in dense.items():
            out[f"hybrid {name}, pair weight {weight:g}"] = float(fused_ndcg(sparse, matrix, task.qrels, DEFAULT_ALPHA).mean())
    return out


def main(argv: list[str] | None = None) -> None:
    args = runs_parser(__doc__).parse_args(argv)

    scores = {}
    for run in args.runs:
        scores[run] = run_ndcg(run, args.device)
        print(run.name, {k: round(v, 4) for k, v in scores[run].items()}, flush=True)
    systems = list(next(iter(scores.values())))
    rows = [[system, f"{statistics.mean(scores[r][system] for r in args.runs):.4f}",
             *(f"{scores[r][system]:.4f}" for r in args.runs)] for system in systems]
    table = markdown_table(["system (title -> abstract nDCG@10)", "mean", *(r.name for r in args.runs)], rows)
    append_results("BM25 word pairs, alone and in the hybrid", table, append=not args.no_append,
                   notes=f"runs {', '.join(r.name for r in args.runs)}, each on its own held-out split (all held-out "
                         f"titles searching the held-out abstracts only); BM25 Snowball-stemmed at its default k1; "
                         f"convex hybrid at dense weight {DEFAULT_ALPHA}; pair weight 0 = words only")


if __name__ == "__main__":
    main()
