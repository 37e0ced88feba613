"""How many BM25-mined hard negatives are near-duplicates of their positive (the same invention filed
again), by word-set Jaccard threshold: what ``negative_max_overlap`` removes.

    python -m benchmarks.near_duplicates [--corpus data/patents/a61_patents.csv] [--top-k 30]

Each patent's title is the query, its title + abstract the positive (as the mqg recipe indexes them);
the top mined negative (BM25 depth ``--top-k``, never a positive) is compared with the positive.
"""

from __future__ import annotations

import argparse

from benchmarks._results import append_results, markdown_table

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def main(argv: list[str] | None = None) -> None:
    from inference.retrieval.bm25 import Bm25Index
    from inference.retrieval.corpus import read_patents
    from solution.embedder.negatives import jaccard, mine_hard_negatives, word_set

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default="data/patents/a61_patents.csv")
    p.add_argument("--top-k", type=int, default=30)
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args(argv)

    patents = read_patents(args.corpus)
    docs = [x.view("title+abstract") for x in patents]
    mined = mine_hard_negatives(Bm25Index.build(docs), [x.title for x in patents], [{i} for i in range(len(docs))],
                                args.top_k, 1)
    words = [word_set(d) for d in docs]
    overlaps = [jaccard(words[negs[0]], words[i]) for i, negs in enumerate(mined) if negs]
    rows = [[f">= {t}", sum(o >= t for o in overlaps), f"{100 * sum(o >= t for o in overlaps) / len(overlaps):.1f}%"]
            for t in THRESHOLDS]
    table = markdown_table(["word-set Jaccard with the positive", "top mined negatives", "share"], rows)
    append_results("Near-duplicate hard negatives", table, append=not args.no_append,
                   notes=f"{args.corpus}: {len(overlaps)} titles with a mined negative (BM25 Snowball-stemmed, depth "
                         f"{args.top_k}); the default `negative_max_overlap` is 0.8")


if __name__ == "__main__":
    main()
