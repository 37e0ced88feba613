"""BM25 with and without the Snowball English stemmer on the embedder evaluation's retrieval tasks.

    python -m benchmarks.bm25_stemming [--corpus data/patents/a61_patents.csv] [--seeds 42 7 1]

The tasks are the embedder evaluation's (``solution.embedder.evaluate.build_tasks``): the held-out
patents' titles (and their offline synthetic queries, per role) search the whole corpus, every other
patent a distractor. Each seed draws another held-out split, so the spread between seeds says how
much of a difference is the split. BM25 needs no model: the table takes seconds.
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks._results import append_results, markdown_table, task_ndcg
from solution.embedder.evaluate import EvalOptions, build_tasks, heldout_patents, query_patents

STEMMERS = {"english": "english", "none": None}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default="data/patents/a61_patents.csv")
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 1])
    p.add_argument("--no-append", action="store_true", help="print the table only")
    args = p.parse_args(argv)

    ndcg: dict[tuple[str, str], list[float]] = {}
    seconds: dict[str, list[float]] = {name: [] for name in STEMMERS}
    for seed in args.seeds:
        opts = EvalOptions(corpus=args.corpus, max_patents=0, seed=seed)
        patents, heldout = heldout_patents(opts, None)
        for task in build_tasks(patents, query_patents(heldout, opts), opts):
            for name, stemmer in STEMMERS.items():
                value, took = task_ndcg(task, stemmer)
                ndcg.setdefault((task.name, name), []).append(value)
                seconds[name].append(took)
    tasks = list(dict.fromkeys(name for name, _ in ndcg))
    rows = []
    for task in tasks:
        stemmed, plain = ndcg[task, "english"], ndcg[task, "none"]
        gains = [a - b for a, b in zip(stemmed, plain)]
        rows.append([task, statistics.mean(plain), statistics.mean(stemmed), f"{statistics.mean(gains):+.4f}",
                     f"{min(gains):+.4f} .. {max(gains):+.4f}"])
    table = markdown_table(["task (nDCG@10)", "unstemmed", "Snowball English", "gain (mean)", "gain per seed"], rows)
    ratio = sum(seconds["english"]) / sum(seconds["none"])
    append_results("BM25: Snowball English stemming vs unstemmed", table, append=not args.no_append,
                   notes=f"held-out split of {args.corpus} per seed ({', '.join(map(str, args.seeds))}), all "
                         f"held-out patents as queries, the whole corpus searched; index + scoring time stemmed "
                         f"vs unstemmed: {ratio:.2f}x")


if __name__ == "__main__":
    main()
