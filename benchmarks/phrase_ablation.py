"""Ablation of the phrase matcher: each row adds one design element, all rows get the same budget.

    python benchmarks/phrase_ablation.py --rows 10000 --epochs 1

One fixed grouped split (fold 0 of 5 over a subset of whole anchors), the same training budget per
row in *pairs* (rows x epochs; the wall clock is only a safety cap, because on a shared machine a
clock budget would give each row a different amount of compute), Pearson on the held-out anchors.
The Smooth K2 rows measure thr in {0, .0625, .125, .25}; later rows use the best of them.
Appends the table to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solution.runtime import tune_malloc  # noqa: E402

tune_malloc()

from benchmarks._results import append_results, markdown_table  # noqa: E402
from solution.config import TrainConfig  # noqa: E402
from solution.train import run  # noqa: E402

BASELINE = dict(head="linear", loss="mse", contrastive_weight=0.0, cpc_fusion=False, use_title=False, group_targets=False)


def rows(best_thr: float | None):
    """(label, config overrides) in order; rows after the thr sweep use ``best_thr``."""
    yield "MSE head baseline (linear head, MSE, LoRA)", dict(BASELINE)
    ordinal = dict(BASELINE, head="ordinal", loss="smooth_k2")
    for thr in (0.0, 0.0625, 0.125, 0.25):
        yield f"+ ordinal head, Smooth K2 thr={thr}", dict(ordinal, k2_thr=thr)
    if best_thr is None:
        return
    step = dict(ordinal, k2_thr=best_thr, contrastive_weight=0.3)
    yield f"+ NT-Xent (lambda 0.3), thr={best_thr}", dict(step)
    step.update(cpc_fusion=True)
    yield "+ CPC fusion", dict(step)
    step.update(use_title=True)
    yield "+ context titles", dict(step)
    step.update(group_targets=True)
    yield "+ target grouping (= default)", dict(step)
    yield "same, full fine-tuning instead of LoRA", dict(step, lora=False, lr=5e-5)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=60, help="wall-clock safety cap per row")
    p.add_argument("--rows", type=int, default=10000, help="training rows used (whole anchors), 0 = all")
    p.add_argument("--epochs", type=int, default=1, help="epochs per row")
    p.add_argument("--model", default=None, help="backbone (default: the packaged MiniLM)")
    p.add_argument("--out", default=None, help="folder for the rows' runs (default runs/ablation-<time>)")
    p.add_argument("--only", default=None, help="comma-separated row numbers to run (1-based), for reruns")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out or time.strftime("runs/ablation-%Y%m%d-%H%M%S"))
    only = {int(x) for x in args.only.split(",")} if args.only else None
    results: list[list] = []
    thr_scores: dict[float, float] = {}

    def run_row(number: int, label: str, overrides: dict) -> None:
        if only and number not in only:
            return
        cfg = TrainConfig(**overrides, epochs=args.epochs, budget_minutes=args.minutes, max_train_rows=args.rows,
                          out=str(out / f"row{number:02d}"), submission=str(out / f"row{number:02d}" / "submission.csv"),
                          **({"model": args.model} if args.model else {}))
        metrics = run(cfg)
        epochs = metrics["folds"]["0"]["epochs"]
        pearson = metrics["oof_pearson"]
        if label.startswith("+ ordinal head"):
            thr_scores[overrides["k2_thr"]] = pearson
        train_s = sum(e["train_s"] for e in epochs)
        pairs_per_s = sum(e["pairs_per_s"] * e["train_s"] for e in epochs) / max(1e-6, train_s)
        results.append([number, label, pearson, epochs[-1]["steps"] * cfg.batch_size, f"{pairs_per_s:.0f}",
                        f"{metrics['wall_s']:.0f}"])
        print(f"row {number}: {label}: Pearson {pearson:.4f}", flush=True)

    number = 0
    for label, overrides in rows(None):
        number += 1
        run_row(number, label, overrides)
    best_thr = max(thr_scores, key=thr_scores.get) if thr_scores else 0.0625
    for label, overrides in list(rows(best_thr))[number:]:
        number += 1
        run_row(number, label, overrides)
    table = markdown_table(["#", "row", "val Pearson", "pairs seen", "train pairs/s", "wall s"], results)
    append_results(
        "Phrase matcher ablation",
        table,
        notes=f"fold 0 of 5 grouped by anchor over {args.rows or 'all'} training rows; {args.epochs} epoch(s) per row "
        f"(safety cap {args.minutes} min); best Smooth K2 thr = {best_thr}; machine shared with other jobs, so wall "
        "times are not comparable between rows",
    )


if __name__ == "__main__":
    main()
