"""Ablation of the phrase matcher: each row adds one design element, all rows get the same budget.

    python -m benchmarks.phrase_ablation --rows 10000 --epochs 1

One fixed grouped split (fold 0 of 5 over a subset of whole anchors), the same training budget per
row in *pairs* (rows x epochs; the wall clock is only a safety cap, because on a shared machine a
clock budget would give each row a different amount of compute), Pearson on the held-out anchors.
The Smooth K2 rows measure thr in {0, .0625, .125, .25}; then NT-Xent, CPC fusion, titles and grouping are
added one at a time, each kept only if Pearson rose. Appends the table to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

from solution.runtime import tune_malloc

tune_malloc()

from benchmarks._results import append_results, markdown_table  # noqa: E402 (after tune_malloc: before torch loads)
from solution.phrase.config import PhraseTrainConfig  # noqa: E402
from solution.phrase.train import run  # noqa: E402

BASELINE = dict(head="linear", loss="mse", contrastive_weight=0.0, cpc_fusion=False, use_title=False, group_targets=False,
                pooling="mean")
THRESHOLDS = (0.0, 0.0625, 0.125, 0.25)
ADDITIONS = [  # tried in this order; each stays in the base only if it raised Pearson (greedy forward selection)
    ("NT-Xent (lambda 0.3)", dict(contrastive_weight=0.3)),
    ("CPC fusion", dict(cpc_fusion=True)),
    ("context titles", dict(use_title=True)),
    ("target grouping", dict(group_targets=True)),
    ("context titles, pair pooling", dict(use_title=True, pooling="pair")),
    ("target grouping, pair pooling", dict(group_targets=True, pooling="pair")),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=60, help="wall-clock safety cap per row")
    p.add_argument("--rows", type=int, default=10000, help="training rows used (whole anchors), 0 = all")
    p.add_argument("--epochs", type=int, default=1, help="epochs per row")
    p.add_argument("--model", default=None, help="backbone (default: the packaged MiniLM)")
    p.add_argument("--out", default=None, help="folder for the rows' runs (default runs/ablation-<time>); "
                   "rows already finished there are read back, not re-run")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out or time.strftime("runs/ablation-%Y%m%d-%H%M%S"))
    results: list[list] = []

    def run_row(label: str, overrides: dict) -> float:
        number = len(results) + 1
        row_dir = out / f"row{number:02d}"
        cfg = PhraseTrainConfig(**overrides, epochs=args.epochs, budget_minutes=args.minutes, max_train_rows=args.rows,
                          out=str(row_dir), submission=str(row_dir / "submission.csv"),
                          **({"model": args.model} if args.model else {}))
        done = row_dir / "run_state.json"
        if done.exists() and json.loads(done.read_text()).get("complete") and \
                json.loads(done.read_text())["config"] == cfg.to_dict():
            metrics = json.loads((row_dir / "metrics.json").read_text())  # same row, already measured
        else:
            if row_dir.exists():
                shutil.rmtree(row_dir)
            metrics = run(cfg)
        epochs = metrics["folds"]["0"]["epochs"]
        train_s = sum(e["train_s"] for e in epochs)
        pairs_per_s = sum(e["pairs_per_s"] * e["train_s"] for e in epochs) / max(1e-6, train_s)
        pearson = metrics["oof_pearson"]
        results.append([number, label, pearson, epochs[-1]["steps"] * cfg.batch_size, f"{pairs_per_s:.0f}",
                        f"{metrics['wall_s']:.0f}"])
        print(f"row {number}: {label}: Pearson {pearson:.4f}", flush=True)
        return pearson

    best = run_row("MSE head baseline (linear head, MSE, LoRA)", dict(BASELINE))
    base = dict(BASELINE)
    ordinal = dict(BASELINE, head="ordinal", loss="smooth_k2")
    thr_scores = {thr: run_row(f"ordinal head + Smooth K2, thr={thr}", dict(ordinal, k2_thr=thr)) for thr in THRESHOLDS}
    best_thr = max(thr_scores, key=thr_scores.get)
    if thr_scores[best_thr] > best:
        base, best = dict(ordinal, k2_thr=best_thr), thr_scores[best_thr]
    kept = []
    for name, change in ADDITIONS:
        score = run_row(f"+ {name}", dict(base, **change))
        if score > best:
            base, best = dict(base, **change), score
            kept.append(name)
        results[-1][1] += " (kept)" if name in kept else " (dropped)"
    run_row("best config, full fine-tuning instead of LoRA", dict(base, lora=False, lr=5e-5))
    table = markdown_table(["#", "row", "val Pearson", "pairs seen", "train pairs/s", "wall s"], results)
    append_results(
        "Phrase matcher ablation",
        table,
        notes=f"fold 0 of 5 grouped by anchor over {args.rows or 'all'} training rows; {args.epochs} epoch(s) per row "
        f"(safety cap {args.minutes} min); best Smooth K2 thr = {best_thr}; greedy: each '+' row adds to the best config "
        f"so far and is kept only if Pearson rose (kept: {', '.join(kept) or 'none'}); machine shared with other jobs, "
        "so wall times are not comparable between rows",
    )


if __name__ == "__main__":
    main()
