"""Peak memory of `python -m inference score` as rows grow, for one huge anchor group vs distinct anchors.

    python -m benchmarks.score_memory --model models/NAME [--rows 2000 4000 8000]

The multi layout groups a CSV's rows by anchor + context; a group of thousands of targets must cost
memory in proportion to its rows, like thousands of distinct anchors do, not to their square (the
grouping of the other targets used to be built whole: 641 MB for 8,000 rows of one anchor against
173 MB for distinct anchors). Each case runs in its own process; peak RSS is that process's maximum.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._results import append_results, markdown_table

ROOT = Path(__file__).resolve().parents[1]


def write_rows(path: Path, n: int, one_anchor: bool) -> None:
    """``n`` real USPPPM targets, under one anchor + context or each under its own anchor."""
    with open(ROOT / "data" / "uspppm" / "train.csv", encoding="utf-8", newline="") as f:
        source = list(csv.DictReader(f))
    with open(path, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "anchor", "target", "context"])
        for i in range(n):
            row = source[i % len(source)]
            anchor = "abatement" if one_anchor else f"{row['anchor']} {i}"
            out.writerow([f"r{i}", anchor, f"{row['target']} {i // len(source)}", "A47" if one_anchor else row["context"]])


# runs `python -m inference ARGS` and reports its own peak RSS (KiB) on stderr, whatever way it exits
_CHILD = ("import resource, runpy, sys\n"
          "sys.argv = ['inference'] + sys.argv[1:]\n"
          "try:\n    runpy.run_module('inference', run_name='__main__')\n"
          "finally:\n    print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n")


def peak_rss_mib(model: str, csv_path: Path, out: Path) -> tuple[float, float]:
    """(peak RSS MiB, seconds) of one scoring process."""
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", _CHILD, "score", "--model", model, "--input", str(csv_path), "--output",
                          str(out), "--variant", "fp32"], check=True, capture_output=True, text=True, cwd=ROOT)
    kib = next(int(line.split()[1]) for line in res.stderr.splitlines() if line.startswith("PEAK_RSS_KIB"))
    return kib / 1024, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="exported phrase model folder (multi layout)")
    p.add_argument("--rows", type=int, nargs="+", default=[2000, 4000, 8000])
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted(args.rows):
            for one_anchor in (False, True):
                path = Path(tmp) / f"{n}-{one_anchor}.csv"
                write_rows(path, n, one_anchor)
                peak, seconds = peak_rss_mib(args.model, path, Path(tmp) / "out.csv")
                rows.append([f"{n:,}", "one anchor + context" if one_anchor else "distinct anchors", f"{peak:.0f}",
                             f"{seconds:.1f}"])
                print(rows[-1], flush=True)
    table = markdown_table(["rows", "input", "peak RSS MiB", "wall s"], rows)
    append_results("Scoring memory: one huge anchor group vs distinct anchors", table, append=not args.no_append,
                   notes=f"python -m inference score --variant fp32 on {args.model}, one process per case, its own "
                         "peak RSS")


if __name__ == "__main__":
    main()
