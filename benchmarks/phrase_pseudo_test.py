"""The phrase matcher on a pseudo-test of unseen anchors: the 2-fold ensemble against one model, EMA on/off.

    python -m benchmarks.phrase_pseudo_test                                  # every row, two seeds, 30 min each
    python -m benchmarks.phrase_pseudo_test --rows default two-folds --seeds 42 --minutes 5 --max-train-rows 4000

A share of train.csv's anchors (``--holdout``, 20%; the draw is fixed by ``--split-seed`` so every row and
seed sees the same pseudo-test) is carved out with all their rows and contexts and never trained on; the
rest becomes the training data of every run, each a whole ``python -m solution.train`` process under the
same wall-clock budget. The held-out rows are written as the run's test CSV without their scores, and its
submission is scored against them: the stand-in for Kaggle's private test (unseen anchors, a fixed
budget). Rows:

- ``default``: ``python -m solution.train`` as shipped (one model + EMA; on a CPU too slow for mpnet, its
  MiniLM fallback);
- ``two-folds``: 2 of 5 anchor-grouped folds (``configs/two-folds.toml``), each model trained on 80% of
  the rest, the test predictions averaged;
- ``one-model``: one model trained on 90% of the rest (1 of 10 folds), the other 10% a grouped validation
  slice for the collapse guard and the report;
- ``*-ema``: the same with an exponential moving average of the weights (``ema_decay``);
- ``one-model-ema-8ep``: up to 8 epochs, so that the 30-minute clock rather than the epoch count ends it.

Finished runs in ``--out`` are read back, not re-run. Appends the table to RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks._results import append_results, markdown_table

ONE_MODEL = {"n_splits": 10, "folds": 1}
# Every row names its layout in full (a config file and explicit keys), so a change of the trainer's defaults
# does not change what a row trains; "default" alone is whatever `python -m solution.train` does today.
ROWS: dict[str, tuple[str, dict]] = {
    "default": ("the default as shipped (python -m solution.train)", {}),
    "two-folds": ("2 of 5 folds, test predictions averaged (configs/two-folds.toml)", {}),
    "one-model": ("one model on 90% of the training anchors, a 10% grouped validation slice, 4 epochs",
                  {**ONE_MODEL, "ema_decay": 0.0, "epochs": 4}),
    "two-folds-ema": ("2 of 5 folds + EMA of the weights (decay 0.995)", {"ema_decay": 0.995}),
    "one-model-ema": ("one model + EMA of the weights (decay 0.995), 4 epochs",
                      {**ONE_MODEL, "ema_decay": 0.995, "epochs": 4}),
    "one-model-ema-8ep": ("one model + EMA, up to 8 epochs (the clock ends it)",
                          {**ONE_MODEL, "ema_decay": 0.995, "epochs": 8}),
    "seed-design": ("configs/seed-design.toml (2 of 5 folds)", {}),
    "seed-design-one-model": ("configs/seed-design.toml as one model + EMA, up to 8 epochs",
                              {**ONE_MODEL, "ema_decay": 0.995, "epochs": 8}),
}
CONFIGS = {"two-folds": "configs/two-folds.toml", "two-folds-ema": "configs/two-folds.toml",
           "seed-design": "configs/seed-design.toml", "seed-design-one-model": "configs/seed-design.toml"}


def carve(data: Path, out: Path, holdout: float, seed: int) -> dict[str, float]:
    """Write ``out``/uspppm/train.csv (the kept anchors) and test.csv (the held-out anchors, no score) beside
    a copy of data/cpc; returns the held-out rows' scores by id. Rewritten only when missing."""
    with open(data / "uspppm" / "train.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    anchors = sorted({r["anchor"] for r in rows})
    random.Random(seed).shuffle(anchors)
    held = set(anchors[: round(holdout * len(anchors))])
    truth = {r["id"]: float(r["score"]) for r in rows if r["anchor"] in held}
    if (out / "uspppm" / "test.csv").exists():
        return truth
    (out / "uspppm").mkdir(parents=True, exist_ok=True)
    shutil.copytree(data / "cpc", out / "cpc", dirs_exist_ok=True)
    columns = ["id", "anchor", "target", "context", "score"]
    for name, keep, cols in (("train.csv", False, columns), ("test.csv", True, columns[:4])):
        with open(out / "uspppm" / name, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, cols, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(r for r in rows if (r["anchor"] in held) == keep)
    return truth


def train_row(key: str, seed: int, args, data: Path) -> dict:
    out = Path(args.out) / f"{key}-s{seed}"
    state = out / "run_state.json"
    if not (state.exists() and json.loads(state.read_text()).get("complete")):
        cmd = [sys.executable, "-m", "solution.train", "--data", str(data), "--out", str(out), "--seed", str(seed),
               "--budget-minutes", str(args.minutes), "--set", f"submission={out / 'submission.csv'}",
               "--set", f"max_train_rows={args.max_train_rows}", *args.train_args]
        if key in CONFIGS:
            cmd += ["--config", CONFIGS[key]]
        for name, value in ROWS[key][1].items():
            cmd += ["--set", f"{name}={value}"]
        with open(f"{out}.log", "w") as log:
            subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True)
        print(f"{key} seed {seed}: done", flush=True)
    return json.loads((out / "metrics.json").read_text())


def pseudo_test_pearson(submission: Path, truth: dict[str, float]) -> float:
    with open(submission, newline="", encoding="utf-8") as f:
        pred = {r["id"]: float(r["score"]) for r in csv.DictReader(f)}
    if set(pred) != set(truth):
        raise SystemExit(f"{submission}: {len(set(truth) - set(pred))} held-out ids missing, "
                         f"{len(set(pred) - set(truth))} unknown")
    ids = sorted(truth)
    return float(np.corrcoef([pred[i] for i in ids], [truth[i] for i in ids])[0, 1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--seeds", nargs="*", type=int, default=[42, 43])
    p.add_argument("--minutes", type=float, default=30, help="wall-clock budget of every run (the default's)")
    p.add_argument("--holdout", type=float, default=0.2, help="share of train.csv's anchors held out")
    p.add_argument("--split-seed", type=int, default=0, help="draw of the held-out anchors (fixed across rows)")
    p.add_argument("--max-train-rows", type=int, default=0, help="train on about this many rows (0 = all; quick runs)")
    p.add_argument("--data", default="data", help="folder with uspppm/train.csv and cpc/")
    p.add_argument("--out", default="runs/pseudo-test", help="folder of the runs (finished ones are reused)")
    p.add_argument("--no-append", action="store_true", help="print the table without appending it to RESULTS.md")
    p.add_argument("train_args", nargs="*", help="extra arguments for every solution.train run (after --)")
    args = p.parse_args()
    data = Path(args.out) / f"data-holdout{args.holdout:g}-split{args.split_seed}"
    truth = carve(Path(args.data), data, args.holdout, args.split_seed)
    table, wall = [], 0.0
    for key in args.rows:
        runs = [(train_row(key, seed, args, data), Path(args.out) / f"{key}-s{seed}") for seed in args.seeds]
        scores = [pseudo_test_pearson(out / "submission.csv", truth) for _, out in runs]
        wall += sum(m["wall_s"] for m, _ in runs)
        epochs = [" + ".join(str(len(f["epochs"])) for f in m["folds"].values()) for m, _ in runs]
        table.append([ROWS[key][0], statistics.mean(scores), (max(scores) - min(scores)) / 2,
                      " / ".join(f"{s:.4f}" for s in scores),
                      " / ".join(f"{m['oof_pearson']:.4f}" for m, _ in runs), " / ".join(epochs)])
    text = markdown_table(["row", "mean pseudo-test Pearson", "half-range", "per seed", "validation Pearson per seed",
                           "epochs per fold"], table)
    append_results("Phrase matcher on a pseudo-test of unseen anchors: 2-fold ensemble vs one model, EMA", text,
                   append=not args.no_append,
                   notes=f"{args.holdout:.0%} of train.csv's anchors held out (split {args.split_seed}: "
                         f"{len(truth)} rows), never trained on; seeds {'/'.join(map(str, args.seeds))}; "
                         f"{args.minutes:g} min per run; the runs' own wall times add up to {wall / 60:.0f} min")


if __name__ == "__main__":
    main()
