"""Soak: long scoring and search loops must keep memory flat and leak no file handles.

    python -m benchmarks.soak --phrase-model models/NAME --embedder-model models/EMB [--pairs 1000000 --queries 100000]

PhraseScorer scores ``--pairs`` pairs in calls of ``--chunk`` pairs (real USPPPM rows, re-labelled with
fresh ids each call); PatentRanker answers ``--queries`` queries in batches of ``--query-batch`` over an
index of the vendored A61 corpus built with the embedder. Resident memory and open file descriptors are
read from /proc every call; the table shows them at ten points of each loop. Flat means the last tenth
holds no more than the second (the first tenth includes warm-up allocations).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchmarks._results import append_results, markdown_table

ROOT = Path(__file__).resolve().parents[1]


def rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def samples(loop, total: int, step: int) -> list[tuple[int, float, int]]:
    """(items done, RSS MiB, open fds) after each call of ``loop(start, n)``."""
    points = []
    for start in range(0, total, step):
        loop(start, min(step, total - start))
        points.append((min(start + step, total), rss_mib(), open_fds()))
    return points


def ten_points(points: list[tuple[int, float, int]]) -> list[tuple[int, float, int]]:
    picks = sorted({round(i * (len(points) - 1) / 9) for i in range(10)})
    return [points[i] for i in picks]


def soak_phrases(model: str, total: int, chunk: int) -> list[tuple[int, float, int]]:
    from inference import PhraseScorer
    from inference.io import read_pairs

    scorer = PhraseScorer.load(model, device="cpu")
    table = read_pairs(ROOT / "data" / "uspppm" / "train.csv")
    pairs = list(zip(table.columns["anchor"], table.columns["target"], table.columns["context"]))

    def loop(start: int, n: int) -> None:
        rows = [pairs[(start + i) % len(pairs)] for i in range(n)]
        scorer.score(rows)

    return samples(loop, total, chunk)


def soak_search(model: str, total: int, batch: int) -> list[tuple[int, float, int]]:
    from inference.retrieval import PatentRanker
    from inference.retrieval.corpus import read_patents
    from inference.retrieval.index import build_index

    corpus = ROOT / "data" / "patents" / "a61_patents.csv"
    titles = [p.title for p in read_patents(corpus)]
    with tempfile.TemporaryDirectory() as tmp:
        build_index(model, corpus, Path(tmp) / "index", progress=False)
        ranker = PatentRanker.load(Path(tmp) / "index")

        def loop(start: int, n: int) -> None:
            ranker.search_batch([titles[(start + i) % len(titles)] for i in range(n)], k=10)

        return samples(loop, total, batch)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phrase-model", required=True, help="exported phrase model folder")
    p.add_argument("--embedder-model", required=True, help="exported embedder model folder")
    p.add_argument("--pairs", type=int, default=1_000_000)
    p.add_argument("--chunk", type=int, default=20_000, help="pairs per score() call")
    p.add_argument("--queries", type=int, default=100_000)
    p.add_argument("--query-batch", type=int, default=1_000)
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args()
    rows, verdicts = [], []
    loops = [("PhraseScorer.score", lambda: soak_phrases(args.phrase_model, args.pairs, args.chunk), args.pairs),
             ("PatentRanker.search_batch", lambda: soak_search(args.embedder_model, args.queries, args.query_batch),
              args.queries)]
    for name, run, total in loops:
        start = time.time()
        points = run()
        took = time.time() - start
        tenth = max(1, len(points) // 10)
        growth = points[-1][1] - points[tenth][1]
        verdicts.append(f"{name}: {total:,} items in {took:.0f} s; RSS {points[tenth][1]:.0f} -> {points[-1][1]:.0f} MiB "
                        f"after the first tenth ({growth:+.0f} MiB); fds {points[0][2]} -> {points[-1][2]}")
        print(verdicts[-1], flush=True)
        rows += [[name, f"{done:,}", f"{rss:.0f}", fds] for done, rss, fds in ten_points(points)]
    table = markdown_table(["loop", "items done", "RSS MiB", "open fds"], rows)
    append_results("Soak: memory and file handles over long loops", table + "\n\n" + "\n".join(f"- {v}" for v in verdicts),
                   append=not args.no_append, notes=f"pairs per call {args.chunk}, queries per batch {args.query_batch}; "
                                                     "one process, 2 threads by default")


if __name__ == "__main__":
    main()
