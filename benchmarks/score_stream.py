"""Streaming scoring at scale: peak memory and rows/s of `inference score`'s three passes as files grow.

    python -m benchmarks.score_stream                          # 100k, 1M and 10M rows, the passes alone
    python -m benchmarks.score_stream --rows 20000 --model models/NAME   # with a real model's scoring

Rows are real USPPPM pairs under fresh ids, with each anchor+context group's rows scattered over the
file (the hard case: no group is contiguous). Without ``--model`` the scoring step is a stub that
returns zeros, so the table measures what streaming itself costs (reading, checking, bucketing,
writing) and shows that memory stays flat as the file grows 100x; with ``--model`` the real scorer
runs (``PhraseScorer.score_file``). Each size runs in its own process; peak RSS is that process's.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._results import append_results, markdown_table

ROOT = Path(__file__).resolve().parents[1]


def write_rows(path: Path, n: int, seed: int = 0) -> None:
    """``n`` rows drawn from train.csv (anchors suffixed by a group number, so groups stay ~20 rows)."""
    with open(ROOT / "data" / "uspppm" / "train.csv", encoding="utf-8", newline="") as f:
        source = list(csv.DictReader(f))
    rng = random.Random(seed)
    n_groups = max(1, n // 20)
    with open(path, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["id", "anchor", "target", "context"])
        for i in range(n):
            row = source[rng.randrange(len(source))]
            out.writerow([f"r{i:09d}", f"{row['anchor']} {rng.randrange(n_groups)}", row["target"], row["context"]])


def child(csv_path: str, model: str | None, out: str) -> None:
    """Score ``csv_path`` in this process and print its measurements as one JSON line."""
    import numpy as np

    from inference.phrase.stream import score_buckets, scratch_folder, split_pairs, write_ids_and_scores

    start = time.perf_counter()
    if model:
        from inference import PhraseScorer

        scorer = PhraseScorer.load(model, device="cpu")
        rows = len(scorer.score_file(csv_path, out).scores)
    else:
        output = Path(out)
        with scratch_folder(output) as work:
            split = split_pairs(csv_path, Path(work))
            scores = score_buckets(split, lambda table: np.zeros(len(table), dtype=np.float32))
            write_ids_and_scores(split, scores, output)
            rows = split.n_rows
    seconds = time.perf_counter() - start
    print(json.dumps({"rows": rows, "seconds": seconds,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    p.add_argument("--model", help="exported phrase model folder (default: a stub scorer, the passes alone)")
    p.add_argument("--workdir", default=None, help="where the generated files go (default: a temporary folder)")
    p.add_argument("--no-append", action="store_true")
    p.add_argument("--child", nargs=3, metavar=("CSV", "MODEL", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child[0], None if args.child[1] == "-" else args.child[1], args.child[2])
        return
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        for n in args.rows:
            source, out = Path(work) / f"pairs-{n}.csv", Path(work) / f"scores-{n}.csv"
            write_rows(source, n)
            proc = subprocess.run([sys.executable, "-m", "benchmarks.score_stream", "--child", str(source),
                                   args.model or "-", str(out)],
                                  check=True, capture_output=True, text=True, cwd=ROOT)
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append([f"{n:,}", f"{source.stat().st_size / 2**20:.0f}", f"{result['peak_rss_mib']:.0f}",
                         f"{result['seconds']:.1f}", f"{n / result['seconds']:,.0f}"])
            print(rows[-1], flush=True)
            source.unlink()
            out.unlink()
    scorer = f"the model {args.model}" if args.model else "a stub scorer (zeros): the passes alone"
    append_results("Streaming scoring: peak memory and rows/s as the file grows",
                   markdown_table(["rows", "file MiB", "peak RSS MiB", "seconds", "rows/s"], rows),
                   append=not args.no_append,
                   notes=f"each size in its own process; groups of ~20 rows scattered over the file; {scorer}")


if __name__ == "__main__":
    main()
