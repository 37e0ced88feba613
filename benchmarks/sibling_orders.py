"""Validation Pearson of a trained phrase run by the number of sibling orders averaged (test-time augmentation).

    python -m benchmarks.sibling_orders --run runs/bench-default --max-orders 6

For each trained fold: its validation rows scored in file order, then averaged over 2, 3, ... orders
(``Preprocessor.build_orders``: file order + fixed shuffles of each anchor's targets), and each
shuffled order alone, whose spread is the noise a single order carries. Appends the table to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from benchmarks._results import append_results, markdown_table


def fold_scores(run: Path, fold: int, max_orders: int) -> list[np.ndarray]:
    """Validation scores of ``fold`` in each of ``max_orders`` orders, and the labels last."""
    from inference.cpc import CpcVocab
    from inference.phrase.inputs import TableContexts
    from inference.template import InputTemplate
    from solution.phrase.data import load_uspppm, make_folds, model_input_names, preprocessor
    from solution.phrase.evaluate import predict_scores
    from solution.phrase.model import load_trained
    from solution.precision import resolve_precision

    cfg = json.loads((run / "config.json").read_text())
    model, tokenizer = load_trained(run, fold)
    vocab = CpcVocab.load(run / "cpc_vocab.json")
    template = InputTemplate.from_dict(json.loads((run / "template.json").read_text()))
    pre = preprocessor(tokenizer, template, vocab, cfg["max_length"])
    train, _, _ = load_uspppm(cfg["data"])
    val = train.subset(np.flatnonzero(make_folds(train, cfg["n_splits"], cfg["seed"]) == fold))
    names, precision = model_input_names(model, template.layout), resolve_precision(cfg["precision"], "cpu")
    scores = [predict_scores(model, inputs, names, cfg["eval_batch_size"], "cpu", precision, pre.encoder.pad_id)
              for inputs in pre.build_orders(val, TableContexts.of(val, vocab), max_orders)]
    return [*scores, np.asarray(val.columns["score"], dtype=np.float64)]


def main() -> None:
    from solution.phrase.evaluate import pearson

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a finished multi-layout phrase run")
    p.add_argument("--max-orders", type=int, default=6)
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args()
    run = Path(args.run)
    folds = sorted(int(d.name[4:]) for d in run.glob("fold*") if (d / "trainable_state.pt").is_file())
    per_fold = {fold: fold_scores(run, fold, args.max_orders) for fold in folds}
    rows = []
    for n in range(1, args.max_orders + 1):
        values = [pearson(np.mean(s[:n], axis=0), s[-1]) for s in per_fold.values()]
        rows.append([n, *[f"{v:.4f}" for v in values], f"{statistics.mean(values):.4f}"])
    single = {f: [pearson(o, s[-1]) for o in s[1:-1]] for f, s in per_fold.items()}
    table = markdown_table(["orders averaged", *[f"fold {f}" for f in folds], "mean"], rows)
    spread = "; ".join(f"fold {f}: {min(v):.4f}..{max(v):.4f}" for f, v in single.items())
    append_results("Phrase matcher: validation Pearson by sibling orders averaged", table, append=not args.no_append,
                   notes=f"run {run}; orders = file order + fixed shuffles of each anchor's targets (seeds 1..); "
                         f"one shuffled order alone scores {spread}")


if __name__ == "__main__":
    main()
