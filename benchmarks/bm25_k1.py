"""BM25's term-saturation constant k1 (or its length normalisation b, or its word-pair weight), chosen on
training patents and reported on held-out ones.

    python -m benchmarks.bm25_k1 [--corpus data/patents/a61_patents.csv] [--seeds 42 7 1] [--k1 0.3 0.6 0.9 1.2 1.5]
    python -m benchmarks.bm25_k1 --sweep pair_weight [--pair-weight 0 0.2 0.35 0.5 1]
    python -m benchmarks.bm25_k1 --sweep b [--b 0.3 0.5 0.75 0.9 1]

The choice is made on the **training** patents of each split (their titles searching their own
abstracts, the title -> abstract task on patents the evaluation never queries), then the held-out
tasks of the embedder evaluation (``solution.embedder.evaluate.build_tasks``: held-out titles and
synthetic queries searching the whole corpus) show what the choice does where it is scored. The
parameters not swept keep their defaults. BM25 needs no model: the table takes minutes.
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks._results import append_results, markdown_table, task_ndcg
from inference.retrieval.bm25 import DEFAULT_B, DEFAULT_K1, DEFAULT_PAIR_WEIGHT
from solution.embedder.evaluate import (
    EvalOptions,
    build_tasks,
    heldout_patents,
    known_item_qrels,
    query_patents,
)
from solution.embedder.evaluators.ir import RetrievalTask

SELECTION = "title2abstract on training patents (selection)"
SWEEPS = {"k1": "the k1 constant", "b": "the length normalisation b", "pair_weight": "the word-pair weight"}
DEFAULTS = {"k1": DEFAULT_K1, "b": DEFAULT_B, "pair_weight": DEFAULT_PAIR_WEIGHT}


def training_task(patents, heldout) -> RetrievalTask:
    """Titles of the patents the split trains on, each searching those patents' abstracts."""
    held = {p.patent_id for p in heldout}
    train = [p for p in patents if p.patent_id not in held]
    return RetrievalTask(SELECTION, [p.title for p in train], [p.abstract for p in train],
                         known_item_qrels([p.abstract for p in train], len(train)))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default="data/patents/a61_patents.csv")
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 1])
    p.add_argument("--sweep", choices=tuple(SWEEPS), default="k1", help="the parameter whose values make the columns")
    p.add_argument("--k1", type=float, nargs="+", default=[0.3, 0.6, 0.9, 1.2, 1.5])
    p.add_argument("--b", type=float, nargs="+", default=[0.3, 0.5, 0.75, 0.9, 1.0])
    p.add_argument("--pair-weight", type=float, nargs="+", default=[0.0, 0.2, 0.35, 0.5, 1.0])
    p.add_argument("--no-append", action="store_true", help="print the table only")
    args = p.parse_args(argv)

    values = getattr(args, args.sweep)
    ndcg: dict[tuple[str, float], list[float]] = {}
    for seed in args.seeds:
        opts = EvalOptions(corpus=args.corpus, max_patents=0, seed=seed)
        patents, heldout = heldout_patents(opts, None)
        for task in [training_task(patents, heldout), *build_tasks(patents, query_patents(heldout, opts), opts)]:
            for value in values:
                ndcg.setdefault((task.name, value), []).append(task_ndcg(task, **{args.sweep: value})[0])
            print(task.name, seed, [round(ndcg[task.name, v][-1], 4) for v in values], flush=True)
    tasks = list(dict.fromkeys(name for name, _ in ndcg))
    rows = [[task, *(f"{statistics.mean(ndcg[task, v]):.4f}" for v in values)] for task in tasks]
    spread = max(max(v) - min(v) for v in ndcg.values())
    best = max(values, key=lambda v: statistics.mean(ndcg[SELECTION, v]))
    table = markdown_table(["task (nDCG@10, mean over seeds)", *(f"{args.sweep} {v:g}" for v in values)], rows)
    fixed = ", ".join(f"{name} {value:g}" for name, value in DEFAULTS.items() if name != args.sweep)
    append_results(f"BM25: {SWEEPS[args.sweep]}, chosen on training patents", table, append=not args.no_append,
                   notes=f"Snowball-stemmed BM25, {fixed}; seeds {', '.join(map(str, args.seeds))} (each its "
                         f"own held-out split; the largest spread of one cell over seeds: {spread:.4f}); the selection "
                         f"row's best {args.sweep}: {best:g}; held-out rows: all held-out patents as queries, whole "
                         f"corpus searched")


if __name__ == "__main__":
    main()
