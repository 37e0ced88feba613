"""Score any ``id,anchor,target,context`` CSV with a trained phrase run: ``python -m solution.predict --help``.

    python -m solution.predict --run runs/NAME --input data/uspppm/test.csv --output submissions/NAME.csv

Targets are grouped by anchor+context *within the input file* (as at training time); every fold of
the run is applied and the scores averaged. Output is ``id,score`` in input order, written atomically.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from inference.validate import positive_int

log = logging.getLogger("solution.predict")


def trained_folds(run_dir: Path) -> list[int]:
    """The run's folds with trained weights (``fold*/trainable_state.pt``), in order; exits when it has none."""
    folds = sorted(int(p.parent.name[4:]) for p in run_dir.glob("fold*/trainable_state.pt"))
    if not folds:
        raise SystemExit(f"{run_dir}: no trained fold (fold*/trainable_state.pt); is the run finished?")
    return folds


def predict_file(
    run_dir: str | Path, input_csv: str | Path, device: str = "auto", batch_size: int = 32, orders: int | None = None,
    precision: str | None = None,
) -> tuple[list[str], np.ndarray]:
    """(ids, scores) for a CSV, averaged over the run's folds and ``orders`` sibling orders (default: the
    run's ``sibling_orders``, as its own submission was scored), in ``precision`` (default: the run's)."""
    from inference.cpc import CpcVocab
    from inference.io import read_pairs
    from inference.phrase.inputs import TableContexts
    from inference.template import InputTemplate
    from inference.validate import check_positive
    from solution.phrase.data import model_input_names, preprocessor
    from solution.phrase.evaluate import predict_orders
    from solution.phrase.model import load_trained
    from solution.precision import resolve_precision
    from solution.runtime import pick_device

    check_positive("batch_size", batch_size)
    check_positive("orders", orders, allow_none=True)
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise SystemExit(f"{run_dir}: not a training run folder (no config.json); pass --run runs/NAME")
    cfg = json.loads((run_dir / "config.json").read_text())
    device = pick_device(device)
    precision = resolve_precision(precision or cfg["precision"], device)
    table = read_pairs(input_csv, allow_empty=True)
    if not len(table):
        return [], np.zeros(0, dtype=np.float32)
    vocab = CpcVocab.load(run_dir / "cpc_vocab.json")
    contexts = TableContexts.of(table, vocab)
    template = InputTemplate.from_dict(json.loads((run_dir / "template.json").read_text()))
    orders = cfg.get("sibling_orders", 1) if orders is None else orders
    scores, inputs = [], None
    for fold in trained_folds(run_dir):
        model, tokenizer = load_trained(run_dir, fold, device)
        pre = preprocessor(tokenizer, template, vocab, cfg["max_length"])
        inputs = inputs or pre.build_orders(table, contexts, orders)  # the same for every fold
        scores.append(predict_orders(model, inputs, model_input_names(model, template.layout), batch_size, device,
                                     precision, pre.encoder.pad_id, progress=f"fold {fold}"))
    return table.ids, np.mean(scores, axis=0)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m solution.predict", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run folder written by solution.train (runs/NAME)")
    p.add_argument("--input", required=True, help="CSV with id,anchor,target,context (extra columns ignored)")
    p.add_argument("--output", required=True, help="where to write id,score")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to run the model")
    p.add_argument("--batch-size", type=positive_int, default=32,
                   help="sequences per forward pass (multi layout: a sequence holds a group's targets)")
    p.add_argument("--orders", type=positive_int, default=None,
                   help="sibling orders each row is scored in and averaged over (default: the run's sibling_orders)")
    p.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"], default=None,
                   help="autocast precision (default: the run's; auto = bf16 where this CPU runs it faster)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from inference.io import DataError, OutputError, check_output_path, write_scores
    from solution.config import ConfigError

    try:
        check_output_path(args.output, [args.input])
        ids, scores = predict_file(args.run, args.input, args.device, args.batch_size, args.orders, args.precision)
        write_scores(args.output, ids, scores)
    except DataError as err:
        raise SystemExit(f"data error: {err}") from None
    except (OutputError, ConfigError) as err:  # ConfigError: --device cuda without CUDA; OutputError: disk full too
        raise SystemExit(f"error: {err}") from None
    if not ids:
        print(f"note: {args.input} has a header and no rows; wrote {args.output} with the header only", file=sys.stderr)
    print(f"wrote {len(ids)} scores to {args.output}")


if __name__ == "__main__":
    main()
