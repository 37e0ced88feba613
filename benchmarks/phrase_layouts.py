"""Phrase matcher comparison on anchor-grouped folds: layouts and seed-design parts, each row run with two seeds.

    python -m benchmarks.phrase_layouts --epochs 3 --jobs 2          # the seed-part screening on MiniLM
    python -m benchmarks.phrase_layouts --rows mpnet mpnet-seed --mpnet models/all-mpnet-base-v2

Every row is one change against a config file (the packaged MiniLM preset for most, the default for the
mpnet rows, ``configs/seed-design.toml`` for the seed rows), trained on all of train.csv and
scored on fold 0 of 5 grouped by anchor; each seed also re-draws the folds, so the spread covers both
initialisation and split. A difference counts only if it is larger than the spread. Runs already
finished in ``--out`` are read back, not re-run. ``--jobs 2`` trains two runs at once with one thread
each: the quality columns are unaffected (the budget is in epochs; the clock is a safety cap), the
speed columns are then not comparable, so they are left out. Appends the table to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks._results import append_results, markdown_table
from inference.backend.cores import usable_cores

# the MiniLM default before the multi layout: bare pairs, LoRA, ordinal head + Smooth K2
PREVIOUS_DEFAULT = {"layout": "pair", "use_title": False, "max_length": 64, "batch_size": 32, "eval_batch_size": 128,
                    "lora": True, "lr": 5e-4, "loss": "smooth_k2"}
MINILM = "configs/minilm.toml"  # the packaged MiniLM preset: multi layout + class title + CPC fusion
SEED = "configs/seed-design.toml"
# key: (label, config file the row starts from, "--model" or None, overrides). Every row is one change
# against its config file; the seed row runs the seed-design file on the packaged MiniLM.
ROWS: dict[str, tuple[str, str, str | None, dict]] = {
    "pair": ("pair layout, bare pairs, LoRA, Smooth K2 (the MiniLM default before multi)", MINILM, None,
             {**PREVIOUS_DEFAULT, "cpc_fusion": False}),
    "bare": ("MiniLM multi, no class title, no CPC fusion", MINILM, None, {"use_title": False, "cpc_fusion": False}),
    "title": ("MiniLM multi + class title, no CPC fusion", MINILM, None, {"cpc_fusion": False}),
    "minilm": ("MiniLM preset: multi + title + CPC fusion (configs/minilm.toml)", MINILM, None, {}),
    "ntxent3": ("MiniLM preset + NT-Xent on bare phrases, lambda 0.3", MINILM, None, {"contrastive_weight": 0.3}),
    "ntxent5": ("MiniLM preset + NT-Xent on bare phrases, lambda 0.5", MINILM, None, {"contrastive_weight": 0.5}),
    "k2": ("MiniLM preset, Smooth K2 (k 2, thr 0.25 label steps) instead of BCE", MINILM, None, {"loss": "smooth_k2"}),
    "coral": ("MiniLM preset + CORAL term (weight 1) on the ordinal thresholds", MINILM, None, {"coral_weight": 1.0}),
    "lora": ("MiniLM preset, LoRA r8/alpha16 at lr 3e-4 instead of full fine-tuning", MINILM, None,
             {"lora": True, "lr": 3e-4}),
    "lora5e-4": ("MiniLM preset, LoRA r8/alpha16 at lr 5e-4", MINILM, None, {"lora": True, "lr": 5e-4}),
    "lora-plus": ("MiniLM preset, LoRA r8/alpha16 at lr 3e-4, LoRA+ (B at 16x)", MINILM, None,
                  {"lora": True, "lr": 3e-4, "lora_plus_ratio": 16}),
    "seed-plus": ("seed design on MiniLM with LoRA+ (B at 16x)", SEED, "sentence-transformers/all-MiniLM-L6-v2",
                  {"lora_plus_ratio": 16}),
    "seed": ("seed design on MiniLM: CPC fusion + NT-Xent 0.3 + LoRA 3e-4 + Smooth K2 + CORAL (configs/seed-design.toml)",
             SEED, "sentence-transformers/all-MiniLM-L6-v2", {}),
    "chunk64": ("MiniLM multi + title, up to 64 targets per sequence instead of 32", MINILM, None,
                {"max_targets": 64, "max_length": 384, "cpc_fusion": False}),
    "mse": ("MiniLM multi + title, linear head + MSE instead of ordinal + BCE", MINILM, None,
            {"head": "linear", "loss": "mse", "cpc_fusion": False}),
    # the default backbone (all-mpnet-base-v2) and its recipe, at other learning rates: at lr 1e-4 it
    # collapsed to a constant score (val Pearson 0.00 after one full-data epoch)
    "mpnet": ("the default (all-mpnet-base-v2)", "", None, {}),
    "mpnet-lr3e-5": ("the default, backbone lr 3e-5", "", None, {"lr": 3e-5}),
    "mpnet-lr3e-5-head5e-4": ("the default, backbone lr 3e-5, head lr 5e-4", "", None, {"lr": 3e-5, "head_lr": 5e-4}),
    "mpnet-seed": ("the seed design (configs/seed-design.toml) on all-mpnet-base-v2", SEED, None, {}),
}
# the issue-42 screening: the MiniLM preset, each fixed seed part alone on it, the whole fixed seed design
SCREENING = ["minilm", "ntxent3", "ntxent5", "k2", "coral", "lora", "seed"]


def train_row(key: str, seed: int, args, threads: int) -> dict:
    out = Path(args.out) / f"{key}-s{seed}"
    state = out / "run_state.json"
    if state.exists() and json.loads(state.read_text()).get("complete"):
        return json.loads((out / "metrics.json").read_text())
    _, config, model, overrides = ROWS[key]
    cmd = [sys.executable, "-m", "solution.train", "--out", str(out), "--seed", str(seed), "--epochs", str(args.epochs),
           "--budget-minutes", str(args.minutes), "--folds", "1", "--set", "fallback_config="]
    if config:
        cmd += ["--config", config]
    if model or key.startswith("mpnet"):
        cmd += ["--model", model or args.mpnet]
    for name, value in overrides.items():
        cmd += ["--set", f"{name}={json.dumps(value) if isinstance(value, bool) else value}"]
    cmd += ["--set", f"submission={out / 'submission.csv'}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{out}.log", "w") as log:
        subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    print(f"{key} seed {seed}: done", flush=True)
    return json.loads((out / "metrics.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", nargs="*", default=SCREENING, choices=list(ROWS))
    p.add_argument("--seeds", nargs="*", type=int, default=[42, 43])
    p.add_argument("--epochs", type=int, default=3, help="epoch budget of every run (default: the default's)")
    p.add_argument("--minutes", type=float, default=30, help="wall-clock cap of every run (default: the default's)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (threads are split between them)")
    p.add_argument("--mpnet", default="models/all-mpnet-base-v2", help="all-mpnet-base-v2 folder for the mpnet row")
    p.add_argument("--out", default="runs/layouts", help="folder of the runs (finished ones are reused)")
    p.add_argument("--no-append", action="store_true", help="print the table without appending it to RESULTS.md")
    args = p.parse_args()
    threads = max(1, usable_cores() // args.jobs)
    work = [(key, seed) for key in args.rows for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        metrics = list(pool.map(lambda ks: train_row(*ks, args, threads), work))
    by_row: dict[str, list[dict]] = {}
    for (key, _), m in zip(work, metrics):
        by_row.setdefault(key, []).append(m)
    table = []
    for key, runs in by_row.items():
        scores = [m["oof_pearson"] for m in runs]
        epochs = [len(m["folds"]["0"]["epochs"]) for m in runs]
        table.append([ROWS[key][0], statistics.mean(scores), (max(scores) - min(scores)) / 2,
                      " / ".join(f"{s:.4f}" for s in scores), " / ".join(map(str, epochs)),
                      " / ".join(m["precision"] for m in runs)])
    text = markdown_table(["row", "mean val Pearson", "half-range", "per seed", "epochs run", "precision"], table)
    speed = "" if args.jobs == 1 else f"; {args.jobs} runs at once with {threads} thread(s) each, so no speed columns"
    seeds = "one seed" if len(args.seeds) == 1 else f"{len(args.seeds)} seeds"
    append_results(f"Phrase matcher: layouts and seed-design parts ({seeds})", text, append=not args.no_append,
                   notes=f"all of train.csv, fold 0 of 5 grouped by anchor, split and init drawn by seed "
                         f"{'/'.join(map(str, args.seeds))}; {args.epochs} epoch(s) or {args.minutes:g} min per run"
                         f"{speed}; the runs' own wall times add up to {sum(m['wall_s'] for m in metrics) / 60:.0f} min")


if __name__ == "__main__":
    main()
