"""The default training run, measured: wall time, pairs/s, peak RSS, validation Pearson.

    python -m benchmarks.default_run                 # runs `python -m solution.train --out runs/bench-default`
    python -m benchmarks.default_run --metrics runs/NAME/metrics.json   # tabulate a finished run

Extra arguments after ``--`` go to solution.train (e.g. ``-- --model PATH --config configs/gpu.toml``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._results import append_results, markdown_table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--metrics", help="metrics.json of a finished run (skip training)")
    p.add_argument("--out", default="runs/bench-default", help="run folder for the training")
    p.add_argument("--title", default="Default phrase-matcher run", help="section title in RESULTS.md")
    p.add_argument("train_args", nargs="*", help="extra arguments for solution.train (after --)")
    args = p.parse_args()
    command = None
    if args.metrics:
        metrics_path = Path(args.metrics)
    else:
        cmd = [sys.executable, "-m", "solution.train", "--out", args.out, *args.train_args]
        command = "python -m solution.train " + " ".join(cmd[3:])
        start = time.time()
        subprocess.run(cmd, check=True, cwd=Path(__file__).resolve().parents[1])
        print(f"process wall time {time.time() - start:.0f} s")
        metrics_path = Path(args.out) / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    rows = []
    for fold, data in sorted(metrics["folds"].items()):
        for e in data["epochs"]:
            rows.append([fold, e["epoch"], e["steps"], f"{e['train_loss']:.4f}", e["val_pearson"],
                         f"{e.get('sequences_per_s', e['pairs_per_s']):.1f}", f"{e['pairs_per_s']:.0f}",
                         f"{e['wall_s'] / 60:.1f}", f"{e['peak_rss_mb']:.0f}", e.get("stopped_by", "")])
    table = markdown_table(["fold", "epoch", "steps", "train loss", "val Pearson", "train sequences/s", "train pairs/s",
                            "wall min", "peak RSS MiB", "stopped by"], rows)
    probe = metrics.get("precision_probe", {})
    chosen = f" ({probe['chosen_by']}: fp32 {probe['fp32_ms']} ms, bf16 {probe['bf16_ms']} ms)" if "fp32_ms" in probe else ""
    table += (f"\n\n**Out-of-fold Pearson {metrics['oof_pearson']:.4f}**, whole run {metrics['wall_s'] / 60:.1f} min "
              f"(budget {metrics['budget_minutes']} min) on {metrics['device']} with {metrics['precision']}{chosen}, "
              f"{metrics.get('layout', 'pair')} layout.")
    orders = {k: v for k, v in metrics["folds"].items() if "val_pearson_first_order" in v}
    if orders:
        table += (" Validation averaged over the sibling orders (the last epoch's model): "
                  + "; ".join(f"fold {k} {v['val_pearson']:.4f} (first order alone {v['val_pearson_first_order']:.4f})"
                              for k, v in sorted(orders.items())) + ".")
    file_order_only = sorted(k for k, v in metrics["folds"].items() if v.get("val_sibling_orders") == 1)
    if file_order_only:
        table += (f" Fold(s) {', '.join(file_order_only)} scored validation in the first sibling order only (the clock cut their "
                  "training; test rows still over every sibling order).")
    if "model_fallback" in metrics:
        fell = metrics["model_fallback"]
        table += (f" After {fell['at_s']} s the run fell back from {fell['from']} to {fell['to']} (the clock allowed "
                  f"~{fell['forecast_epochs']} epochs a fold, under {fell['below_epochs']}).")
    if "budget_warning" in metrics:
        table += f" The trainer warned: \"{metrics['budget_warning']}\"."
    append_results(args.title, table, command=command)


if __name__ == "__main__":
    main()
