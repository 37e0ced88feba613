"""The classification preset against zero-shot and TF-IDF, over seeds: does it win by more than the spread?

    python -m benchmarks.classify_seeds                      # seeds 42 and 7, ~25 minutes on 2 cores
    python -m benchmarks.classify_seeds --seeds 42,7,3 --runs-dir /tmp/classify-runs
    python -m benchmarks.classify_seeds --seeds 42,7,1 --set budget_minutes=30 --runs-dir /tmp/classify-30

Each seed trains ``configs/embedder-classify.toml`` (10 minutes, or what ``--set`` overrides; a
finished run in ``--runs-dir`` is reused) with its own held-out split, then scores CPC-subclass
macro-F1 (logistic regression, 5-fold) and V-measure (k-means) of that split's held-out patents
(title+abstract, whatever the run's ``doc_view``) for three systems: the fine-tuned run, the
zero-shot backbone and TF-IDF (``solution/embedder/evaluators/tfidf.py``). The table gives every seed
and the mean with its half-range; the last rows give the preset's gain over the better baseline
per seed, which counts only where it exceeds the seeds' spread.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks._results import append_results, markdown_table

ROOT = Path(__file__).resolve().parents[1]

PRESET = "configs/embedder-classify.toml"
SYSTEMS = ("preset", "zero-shot", "tfidf")


def train(run_dir: Path, seed: int, overrides: list[str]) -> dict:
    """The run's metrics.json, training it first unless ``run_dir`` already holds a finished run."""
    if not (run_dir / "metrics.json").exists():
        sets = [arg for kv in [f"seed={seed}", *overrides] for arg in ("--set", kv)]
        subprocess.run([sys.executable, "-m", "solution.train", "embedder", "--config", PRESET, "--out", str(run_dir),
                        *sets], cwd=ROOT, check=True)
    return json.loads((run_dir / "metrics.json").read_text())


def label_scores(run_dir: Path) -> dict[str, dict[str, float]]:
    """Macro-F1 and V-measure of the run, the zero-shot backbone and TF-IDF on the run's held-out patents."""
    from solution.embedder.evaluate import EvalOptions, heldout_patents, label_metrics, torch_encoder
    from solution.embedder.evaluators.tfidf import tfidf_vectors
    from solution.embedder.model import EmbedderConfig, build_encoder, load_run_encoder

    opts = EvalOptions(corpus=json.loads((run_dir / "config.json").read_text())["corpus"])
    _, heldout = heldout_patents(opts, run_dir)
    tuned, tokenizer, config = load_run_encoder(run_dir, opts.device)
    zero, zero_tokenizer = build_encoder(EmbedderConfig(backbone=config.backbone, lora=False))
    encoders = {"preset": torch_encoder(tuned.eval(), tokenizer, opts.doc_tokens(config), opts),
                "zero-shot": torch_encoder(zero.eval(), zero_tokenizer, opts.doc_tokens(config), opts),
                "tfidf": tfidf_vectors}
    return {name: label_metrics(encode, heldout, "title+abstract", opts.seed) for name, encode in encoders.items()}


def spread_row(label: str, values: list[float]) -> list[str]:
    half = (max(values) - min(values)) / 2
    return [label, f"{statistics.mean(values):.4f} ± {half:.4f}", " / ".join(f"{v:.4f}" for v in values)]


def main(argv: list[str] | None = None) -> None:
    from solution.runtime import tune_malloc

    tune_malloc()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="42,7", type=lambda s: [int(v) for v in s.split(",") if v])
    p.add_argument("--runs-dir", default="runs/classify-seeds")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a preset key for every run (repeatable), e.g. budget_minutes=30")
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scores, steps = {}, {}
    for seed in args.seeds:
        run_dir = Path(args.runs_dir) / f"classify-s{seed}"
        metrics = train(run_dir, seed, args.overrides)
        steps[seed] = f"{metrics['steps']} steps, {metrics['budget_minutes']} min budget, stopped by {metrics['stopped_by']}"
        scores[seed] = label_scores(run_dir)
    rows = []
    for metric, key in (("macro-F1", "classification_macro_f1"), ("V-measure", "clustering_v_measure")):
        for system in SYSTEMS:
            rows.append(spread_row(f"{metric}: {system}", [scores[s][system][key] for s in args.seeds]))
        gains = [scores[s]["preset"][key] - max(scores[s]["zero-shot"][key], scores[s]["tfidf"][key])
                 for s in args.seeds]
        rows.append(spread_row(f"{metric}: preset minus the better baseline", gains))
    table = markdown_table(["metric: system", "mean ± half-range", "per seed (" + " / ".join(map(str, args.seeds)) + ")"],
                           rows)
    append_results("Embedder classification preset vs zero-shot and TF-IDF, over seeds", table,
                   append=not args.no_append,
                   notes=f"{PRESET} with {', '.join(args.overrides) or 'no overrides'}, seeds {args.seeds}, each "
                         f"with its own held-out split ({'; '.join(f'{k}: {v}' for k, v in steps.items())}); "
                         "labels = first-listed CPC subclass; macro-F1 by 5-fold logistic regression, V-measure "
                         "by k-means with k = number of subclasses, on every held-out patent; TF-IDF: sublinear tf, "
                         "English stop words, 1-2-grams, fitted on the held-out patents")


if __name__ == "__main__":
    main()
