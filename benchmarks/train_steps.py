"""Training steps per minute on this CPU, per precision: the phrase matcher's default and the retrieval preset.

    python -m benchmarks.train_steps                  # 2 minutes of each (job, precision), ~10 minutes
    python -m benchmarks.train_steps --minutes 1 --no-append

Each row is a short real run (``python -m solution.train [embedder] --set precision=P``) whose rate
is the slope of its ``steps.jsonl`` (every step logged; first to last), so start-up, query generation and
evaluation are left out. The ``auto`` column says what ``precision=auto`` picks here (the start-up
probe times one linear layer's step in both precisions and keeps the faster): the default gets
its full epochs on any CPU only if that pick is the faster row. Appends the table to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks._results import append_results, markdown_table

ROOT = Path(__file__).resolve().parents[1]
# (row label, solution.train arguments before the common ones, what one step holds)
JOBS = {
    "phrase": ("phrase matcher default (all-mpnet-base-v2, multi layout)", [],
               "8 sequences (~140 target pairs)"),
    "embedder": ("embedder retrieval preset (MiniLM, LoRA)", ["embedder", "--config", "configs/embedder-retrieval.toml"],
                 "32 patents, query + alignment views"),
}


def steps_per_minute(run_dir: Path) -> tuple[float | None, int]:
    """(steps per minute between the first and last logged step, steps in between); the rate is None
    when fewer than 2 steps were logged (emulated bf16 on an AVX2-only CPU: one mpnet step took ~150 s)."""
    steps_file = run_dir / "steps.jsonl"  # absent: the budget, less the evaluation it keeps back, ran out first
    rows = [json.loads(line) for line in steps_file.read_text().splitlines() if line.strip()] if steps_file.exists() else []
    if len(rows) < 2:
        return None, len(rows)
    first, last = rows[0], rows[-1]
    return (last["step"] - first["step"]) / max(1e-6, last["elapsed_s"] - first["elapsed_s"]) * 60, last["step"] - first["step"]


def epoch_rate(job: str, run_dir: Path) -> float:
    """Steps per minute from the trainer's own epoch timing in metrics.json (start-up excluded, the first
    step included): the fallback for a run too slow to log 2 steps."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if job == "phrase":
        epochs = metrics["folds"]["0"]["epochs"]
        return epochs[-1]["steps"] / sum(e["train_s"] for e in epochs) * 60
    batch = json.loads((run_dir / "config.json").read_text())["batch_size"]  # patents per step
    return metrics["epochs"][-1]["patents_per_s"] / batch * 60


def rate_cell(rate: float, from_slope: bool) -> str:
    return f"{rate:.1f}" if from_slope else f"{rate:.1f}*"


def measure(job: str, precision: str, minutes: float, tmp: Path) -> tuple[float, int, bool]:
    """(steps per minute, steps logged, whether the rate is the steps.jsonl slope)."""
    out = tmp / f"{job}-{precision}"
    extra = ["--folds", "1"] if job == "phrase" else []
    cmd = [sys.executable, "-m", "solution.train", *JOBS[job][1], "--out", str(out), "--budget-minutes", str(minutes),
           *extra, "--set", f"precision={precision}", "--set", "log_every=1"]
    if job == "phrase":
        # a fifth of train.csv: the same steps, but the validation pass the budget keeps back for shrinks with it
        # (all 7,296 rows took ~130 s of a 4-minute budget in fp32 on an AVX2-only EPYC, bf16 more)
        # and no restart: a budget this short anneals the lr to 0 within a few steps, the stalled loss then restarted
        # the fold and its step count mid-file
        cmd += ["--set", f"submission={out / 'submission.csv'}", "--set", "sibling_orders=1", "--set", "max_train_rows=8000",
                "--set", "restart_below=-1"]
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rate, steps = steps_per_minute(out)
    from_slope = rate is not None
    rate = rate if from_slope else epoch_rate(job, out)
    return rate, steps, from_slope


def auto_choice() -> str:
    from solution.precision import resolve_precision_with_probe

    precision, probe = resolve_precision_with_probe("auto", "cpu")
    return f"{precision} (its probe: linear step fp32 {probe['fp32_ms']:.2f} ms, bf16 {probe['bf16_ms']:.2f} ms)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=2.0, help="wall-clock budget of each run (default 2)")
    p.add_argument("--jobs", nargs="*", default=list(JOBS), choices=list(JOBS))
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for job in args.jobs:
            rates = {precision: measure(job, precision, args.minutes, Path(tmp)) for precision in ("fp32", "bf16")}
            label, _, step = JOBS[job]
            rows.append([label, step, rate_cell(rates["fp32"][0], rates["fp32"][2]),
                         rate_cell(rates["bf16"][0], rates["bf16"][2]), f"{rates['bf16'][0] / rates['fp32'][0]:.2f}x",
                         " / ".join(str(rates[p][1]) for p in ("fp32", "bf16"))])
            print(rows[-1], flush=True)
    auto = auto_choice()
    table = markdown_table(["job", "one step", "fp32 steps/min", "bf16 steps/min", "bf16 / fp32", "steps timed"], rows)
    append_results("Training steps per minute by precision", table, append=not args.no_append,
                   notes=f"{args.minutes:g}-minute runs, one at a time, rate = slope of steps.jsonl (start-up and "
                         f"evaluation excluded; * = fewer than 2 steps logged, rate from the epoch's own timing in "
                         f"metrics.json); precision=auto picks here: {auto}")


if __name__ == "__main__":
    main()
