"""End to end: ``python -m inference score`` (torch-free venv) against ``python -m solution.predict``.

    python benchmarks/end_to_end.py --run runs/NAME --model models/NAME
    python benchmarks/end_to_end.py --run runs/NAME --model models/NAME --rows 2000 --no-append

Both commands score the same Kaggle-format CSV (``id,anchor,target,context``; ``--rows`` rows of
train.csv: whole anchor+context groups drawn at random, rows shuffled as in a test file) in a fresh
process each, so every second a user waits is counted: interpreter start, imports, model load,
tokenising, every fold and every sibling order (each side's default), writing the CSV.
``solution.predict`` runs in this interpreter's environment (torch), once in the run's precision
(auto: bf16 where this CPU runs it faster) and once in fp32 (what a CPU without AVX512-BF16/AMX
trains and predicts in, since its probe keeps fp32 there), ``inference
score`` in a venv that has only the inference library's own dependencies (numpy, tokenizers,
onnxruntime: built in ``--venv`` on first use, checked to have no torch). The table gives wall
seconds, rows/s, the speed ratio and how far the two outputs are apart.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import append_results, markdown_table  # noqa: E402

CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def torch_free_python(folder: Path) -> Path:
    """The python of a venv holding the inference library with its declared dependencies only."""
    python = folder / "bin" / "python"
    if not python.exists():
        venv.create(folder, with_pip=True)
        with tempfile.TemporaryDirectory() as src:  # the packaging files and inference/: the wheel is the library
            for name in ("pyproject.toml", "setup.cfg", "README.md"):
                shutil.copy(ROOT / name, Path(src) / name)
            shutil.copytree(ROOT / "inference", Path(src) / "inference", ignore=shutil.ignore_patterns("__pycache__"))
            subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", src],
                           check=True, env=CLEAN_ENV)
    if subprocess.run([str(python), "-c", "import torch"], capture_output=True, env=CLEAN_ENV).returncode == 0:
        raise SystemExit(f"{folder} has torch installed; pass another --venv")
    return python


def kaggle_csv(path: Path, rows: int, seed: int) -> dict[str, float]:
    """Write ``rows``-odd rows of train.csv as a test file (whole groups, shuffled); returns id -> label."""
    with open(ROOT / "data" / "uspppm" / "train.csv", newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in table:
        groups.setdefault((row["anchor"], row["context"]), []).append(row)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    picked: list[dict] = []
    for key in keys:
        if len(picked) >= rows:
            break
        picked.extend(groups[key])
    random.Random(seed + 1).shuffle(picked)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["id", "anchor", "target", "context"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(picked)
    return {row["id"]: float(row["score"]) for row in picked}


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def read_scores(path: Path) -> dict[str, float]:
    with open(path, newline="", encoding="utf-8") as f:
        return {row["id"]: float(row["score"]) for row in csv.DictReader(f)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="training run folder (runs/NAME) for solution.predict")
    p.add_argument("--model", required=True, help="its export (models/NAME) for inference score")
    p.add_argument("--rows", type=int, default=9000, help="rows of the test file (whole groups, so a few more)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--venv", default=str(Path(tempfile.gettempdir()) / "pss-torch-free-venv"),
                   help="torch-free venv for inference score (built on first use)")
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args(argv)
    from solution.phrase.evaluate import pearson

    python = torch_free_python(Path(args.venv))
    with tempfile.TemporaryDirectory() as tmp:
        source, ort_out = Path(tmp) / "test.csv", Path(tmp) / "score.csv"
        torch_out, fp32_out = Path(tmp) / "predict.csv", Path(tmp) / "predict-fp32.csv"
        labels = kaggle_csv(source, args.rows, args.seed)
        predict = [sys.executable, "-m", "solution.predict", "--run", args.run, "--input", str(source)]
        torch_env = {**os.environ, "PYTHONPATH": str(ROOT)}
        seconds = {"predict": timed([*predict, "--output", str(torch_out)], torch_env),
                   "predict fp32": timed([*predict, "--output", str(fp32_out), "--precision", "fp32"], torch_env),
                   "score": timed([str(python), "-m", "inference", "score", "--model", args.model, "--input",
                                   str(source), "--output", str(ort_out)], CLEAN_ENV)}
        written = {"predict": read_scores(torch_out), "predict fp32": read_scores(fp32_out),
                   "score": read_scores(ort_out)}
    ids = list(labels)
    truth = np.array([labels[i] for i in ids])
    got = {name: np.array([scores[i] for i in ids]) for name, scores in written.items()}
    manifest = json.loads((Path(args.model) / "manifest.json").read_text())
    precision = json.loads((Path(args.run) / "metrics.json").read_text()).get("precision", "the run's")
    labels_of = {"predict": f"`python -m solution.predict` (PyTorch, the run's precision: {precision})",
                 "predict fp32": "`python -m solution.predict --precision fp32` (PyTorch fp32)",
                 "score": "`python -m inference score` (onnxruntime, torch-free venv)"}
    rows = [[labels_of[name], f"{s:.1f}", f"{len(ids) / s:.0f}", f"{seconds['predict'] / s:.2f}x",
             f"{seconds['predict fp32'] / s:.2f}x", f"{pearson(got[name], truth):.4f}",
             f"{np.abs(got[name] - got['predict fp32']).max():.4f}"] for name, s in seconds.items()]
    table = markdown_table(["command", "wall s", "rows/s", "speed vs predict", "speed vs predict fp32",
                            "Pearson vs labels", "max abs diff vs fp32"], rows)
    append_results("End to end: inference score vs solution.predict on a Kaggle-format CSV", table,
                   append=not args.no_append,
                   notes=f"{len(ids)} rows of train.csv (whole anchor+context groups, shuffled; the run trained on "
                         f"most of them, so Pearson here is not a validation score); run {args.run}, model "
                         f"{args.model} ({manifest.get('layout', 'pair')} layout, {len(manifest['folds'])} folds, "
                         f"sibling orders {manifest.get('sibling_orders', 1)}); each side's defaults (inference: "
                         f"variant auto = int8 on CPU); each command a fresh process, start-up included")


if __name__ == "__main__":
    main()
