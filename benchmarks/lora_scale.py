"""The LoRA update's scale at load time, read over several runs' own held-out splits.

    python benchmarks/lora_scale.py --runs runs/probe-preset-retrieval runs/probe-preset-retrieval-s7 \\
        runs/probe-preset-retrieval-s1

A short CPU run stops part of the way along the direction its adapters learned; multiplying the update
(``lora_scale`` > 1, merged into the weights at export) may go further at no training cost, or overshoot.
Each run (trained by ``benchmarks/embedder_variants.py``, which also caches each split's zero-shot score)
is scored at every scale with that script's metrics: t2a nDCG@10 over the whole corpus, macro-F1 and
V-measure. The honest read is leave-one-run-out: each run scored at the scale that was best on the
mean of the *other* runs, so no run's held-out titles choose the scale it is scored at.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._results import append_results, markdown_table  # noqa: E402
from benchmarks.embedder_variants import cached, evaluate  # noqa: E402

SCALES = (1.0, 1.2, 1.4, 1.6, 1.8)


def leave_one_out(scores: dict[str, dict[float, float]]) -> dict[str, float]:
    """For each run, the scale with the best mean score over the other runs.

    >>> leave_one_out({"a": {1.0: 0.7, 1.5: 0.8}, "b": {1.0: 0.9, 1.5: 0.6}, "c": {1.0: 0.5, 1.5: 0.6}})
    {'a': 1.0, 'b': 1.5, 'c': 1.0}
    """
    chosen = {}
    for run in scores:
        others = [s for r, s in scores.items() if r != run]
        chosen[run] = max(others[0], key=lambda scale: statistics.mean(s[scale] for s in others))
    return chosen


def main(argv: list[str] | None = None) -> None:
    from solution.runtime import tune_malloc

    tune_malloc()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True, help="embedder run folders, one per split (>= 2)")
    p.add_argument("--scales", type=lambda s: [float(v) for v in s.split(",")], default=list(SCALES))
    p.add_argument("--corpus", default="data/patents/a61_patents.csv")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-append", action="store_true", help="print only; do not touch RESULTS.md")
    args = p.parse_args(argv)
    if len(args.runs) < 2:
        p.error("give at least two runs: the scale each is scored at is chosen on the others")

    results: dict[str, dict[float, dict]] = {}
    zero: dict[str, float] = {}
    for run in map(Path, args.runs):
        seed = json.loads((run / "config.json").read_text())["seed"]
        name = "zero-shot" if seed == 42 else f"zero-shot-s{seed}"
        zero[run.name] = cached(run.parent / f"probe-{name}.json",
                                lambda s=seed: evaluate(None, args.corpus, args.device, s))["t2a_ndcg10"]
        results[run.name] = {scale: cached(run / f"lora_scale_eval-{scale:g}.json",
                                           lambda r=run, x=scale: evaluate(r, args.corpus, args.device, lora_scale=x))
                             for scale in args.scales}
        print(run.name, {k: round(v["t2a_ndcg10"], 4) for k, v in results[run.name].items()}, flush=True)

    t2a = {run: {scale: r["t2a_ndcg10"] for scale, r in per.items()} for run, per in results.items()}
    chosen = leave_one_out(t2a)
    rows = []
    for run, per in results.items():
        rows.append([run, f"{zero[run]:.4f}"] + [f"{per[x]['t2a_ndcg10']:.4f}" for x in args.scales]
                    + [f"{chosen[run]:g}", f"{t2a[run][chosen[run]]:.4f}", f"{t2a[run][chosen[run]] / zero[run]:.3f}x",
                       f"{t2a[run][1.0] / zero[run]:.3f}x" if 1.0 in t2a[run] else "-"])
    mean_chosen = statistics.mean(t2a[r][chosen[r]] / zero[r] for r in t2a)
    rows.append(["mean", "-"] + [f"{statistics.mean(t2a[r][x] for r in t2a):.4f}" for x in args.scales]
                + ["-", "-", f"{mean_chosen:.3f}x",
                   f"{statistics.mean(t2a[r][1.0] / zero[r] for r in t2a):.3f}x" if 1.0 in args.scales else "-"])
    table = markdown_table(["run", "zero-shot t2a"] + [f"x{x:g}" for x in args.scales]
                           + ["scale chosen on the others", "t2a there", "ratio there", "ratio at x1"], rows)
    labels = markdown_table(["run"] + [f"F1 / V x{x:g}" for x in args.scales],
                            [[run] + [f"{per[x]['f1']:.4f} / {per[x]['v']:.4f}" for x in args.scales]
                             for run, per in results.items()])
    notes = ("t2a nDCG@10: 300 held-out titles of each run's own split searched among the whole corpus "
             "(benchmarks/embedder_variants.py's metric); ratio = against zero-shot on the same split; the scale "
             "multiplies every LoRA update at load time (solution.embedder.model.load_run_encoder); macro-F1 / "
             "V-measure on all held-out patents in the second table")
    append_results("LoRA update scale at load time", table + "\n\n" + labels, notes=notes,
                   append=not args.no_append)


if __name__ == "__main__":
    main()
