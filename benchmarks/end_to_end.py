"""End to end: ``python -m inference score`` (torch-free venv) against ``python -m solution.predict``.

    python -m benchmarks.end_to_end --run runs/NAME --model models/NAME
    python -m benchmarks.end_to_end --run runs/NAME --model models/NAME --input pseudo/test.csv
    python -m benchmarks.end_to_end --run runs/NAME --model models/NAME --rows 2000 --engines auto onnxruntime:fp32

Every command scores the same Kaggle-format CSV (``id,anchor,target,context``: ``--input``, e.g. a
pseudo-test of unseen anchors, or ``--rows`` rows of train.csv, whole anchor+context groups drawn at
random, shuffled) in a fresh process, so every second a user waits is counted: interpreter start,
imports, model load, tokenising, every fold and sibling order (each side's default), writing the CSV.
``solution.predict`` runs in this interpreter's environment (torch), once in the run's precision (auto:
bf16 where this CPU runs it faster) and once in fp32; ``inference score`` runs in a venv that has only
the inference library and its OpenVINO extra (numpy, tokenizers, onnxruntime, openvino: built in
``--venv`` on first use, checked to have no torch), once per ``--engines`` entry (``auto``, or
``RUNTIME:VARIANT``). ``auto`` runs first with an empty runtime cache: its cold start includes the
runtime probe, its big run reads the cached choice, as a user's second call would. Table: wall seconds,
rows/s, speed against each PyTorch mode, Pearson against the labels (``--labels``, by id), the largest
difference from PyTorch fp32, peak RSS, and cold start (a fresh process scoring one anchor group).
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

from benchmarks._results import append_results, markdown_table

ROOT = Path(__file__).resolve().parents[1]

CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def torch_free_python(folder: Path) -> Path:
    """The python of a venv holding the inference library with its declared dependencies and the OpenVINO
    extra only."""
    python = folder / "bin" / "python"
    if not python.exists():
        venv.create(folder, with_pip=True)
        with tempfile.TemporaryDirectory() as src:  # the packaging files and inference/: the wheel is the library
            for name in ("pyproject.toml", "setup.cfg", "README.md"):
                shutil.copy(ROOT / name, Path(src) / name)
            shutil.copytree(ROOT / "inference", Path(src) / "inference", ignore=shutil.ignore_patterns("__pycache__"))
            subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            f"{src}[openvino]"], check=True, env=CLEAN_ENV)
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


# Runs the command as its only child and prints the child's peak RSS (KiB) last on stderr: one process's
# own peak, which the parent's RUSAGE_CHILDREN (a maximum over every child so far) cannot give.
PEAK_RSS = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)")


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one fresh process."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PEAK_RSS, *cmd], cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return seconds, int(proc.stderr.strip().splitlines()[-1]) / 1024


def read_scores(path: Path) -> dict[str, float]:
    with open(path, newline="", encoding="utf-8") as f:
        return {row["id"]: float(row["score"]) for row in csv.DictReader(f)}


def labels_by_id(path: Path, ids: list[str]) -> dict[str, float]:
    with open(path, newline="", encoding="utf-8") as f:
        scores = {row["id"]: float(row["score"]) for row in csv.DictReader(f)}
    missing = [i for i in ids if i not in scores]
    if missing:
        raise SystemExit(f"{path}: no score for {len(missing)} id(s) of the input, e.g. {missing[0]}")
    return {i: scores[i] for i in ids}


def one_group(source: Path, out: Path) -> None:
    """The first anchor+context group of ``source``: the cold-start file."""
    with open(source, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    key = (rows[0]["anchor"], rows[0]["context"])
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["id", "anchor", "target", "context"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(r for r in rows if (r["anchor"], r["context"]) == key)


def commands(args, python: Path, source: Path, out_dir: Path) -> dict[str, tuple[list[str], dict, Path]]:
    """name -> (argv without --input/--output, env, output path)."""
    torch_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cache = {**CLEAN_ENV, "PATENT_SIM_CACHE": str(out_dir / "runtime-cache")}
    predict = [sys.executable, "-m", "solution.predict", "--run", args.run]
    named = {"predict": (predict, torch_env), "predict fp32": ([*predict, "--precision", "fp32"], torch_env)}
    for engine in args.engines:
        runtime, _, variant = engine.partition(":")
        named[f"score {engine}"] = ([str(python), "-m", "inference", "score", "--model", args.model, "--runtime",
                                     runtime, "--variant", variant or "auto"], cache)
    return {name: (cmd, env, out_dir / f"{name.replace(' ', '-').replace(':', '-')}.csv")
            for name, (cmd, env) in named.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="training run folder (runs/NAME) for solution.predict")
    p.add_argument("--model", required=True, help="its export (models/NAME) for inference score")
    p.add_argument("--input", help="the CSV to score (default: --rows rows of train.csv)")
    p.add_argument("--labels", default=str(ROOT / "data" / "uspppm" / "train.csv"),
                   help="CSV with id,score for the input's ids (default: train.csv)")
    p.add_argument("--rows", type=int, default=9000, help="rows of the test file (whole groups, so a few more)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--engines", nargs="+", default=["auto", "onnxruntime:fp32", "onnxruntime:int8", "openvino:fp32",
                                                    "openvino:bf16"],
                   help="inference score runs: auto, or RUNTIME:VARIANT (ones this machine or model cannot run are "
                        "reported and skipped)")
    p.add_argument("--venv", default=str(Path(tempfile.gettempdir()) / "pss-torch-free-openvino-venv"),
                   help="torch-free venv for inference score (built on first use)")
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args(argv)
    from solution.phrase.evaluate import pearson

    python = torch_free_python(Path(args.venv))
    results: dict[str, tuple[float, float, float, np.ndarray]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        source, small = (Path(args.input) if args.input else Path(tmp) / "test.csv"), Path(tmp) / "one-group.csv"
        if not args.input:
            kaggle_csv(source, args.rows, args.seed)
        one_group(source, small)
        ids = list(read_scores_ids(source))
        truth = np.array(list(labels_by_id(Path(args.labels), ids).values()))
        for name, (cmd, env, out) in commands(args, python, source, Path(tmp)).items():
            try:
                cold, _ = timed([*cmd, "--input", str(small), "--output", str(out)], env)
                wall, rss = timed([*cmd, "--input", str(source), "--output", str(out)], env)
            except RuntimeError as err:
                print(f"  {name}: skipped ({str(err).strip().splitlines()[-1]})", flush=True)
                continue
            scores = read_scores(out)
            results[name] = (wall, rss, cold, np.array([scores[i] for i in ids]))
            print(f"  {name}: {wall:.1f} s, cold start {cold:.1f} s, peak RSS {rss:.0f} MiB", flush=True)
    base, fp32 = results["predict"], results["predict fp32"]
    rows = [[f"`{name}`", f"{wall:.1f}", f"{len(ids) / wall:.0f}", f"{base[0] / wall:.2f}x", f"{fp32[0] / wall:.2f}x",
             f"{pearson(scores, truth):.4f}", f"{np.abs(scores - fp32[3]).max():.4f}", f"{rss:.0f}", f"{cold:.1f}"]
            for name, (wall, rss, cold, scores) in results.items()]
    table = markdown_table(["command", "wall s", "rows/s", "speed vs predict", "speed vs predict fp32",
                            "Pearson vs labels", "max abs diff vs fp32", "peak RSS MiB", "cold start s"], rows)
    manifest = json.loads((Path(args.model) / "manifest.json").read_text())
    precision = json.loads((Path(args.run) / "metrics.json").read_text()).get("precision", "the run's")
    append_results("End to end: inference score (each runtime x variant) vs solution.predict", table,
                   append=not args.no_append,
                   notes=f"{len(ids)} rows of {args.input or TRAIN_SLICE}; run {args.run} (predict: its "
                         f"precision {precision}), model {args.model} ({manifest.get('layout', 'pair')} layout, "
                         f"{len(manifest['folds'])} folds, sibling orders {manifest.get('sibling_orders', 1)}); each "
                         "command a fresh process, start-up included; `score auto` ran its runtime probe in the "
                         "cold-start call and read the cached choice in the timed one")


TRAIN_SLICE = ("train.csv (whole anchor+context groups, shuffled; the run trained on most of them, so Pearson is not a "
               "validation score)")


def read_scores_ids(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as f:
        return [row["id"] for row in csv.DictReader(f)]


if __name__ == "__main__":
    main()
