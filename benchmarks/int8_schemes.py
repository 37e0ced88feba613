"""int8 schemes for per-row determinism: dynamic scales (batched, or one sequence per pass) vs static
(calibrated) scales in QDQ form, against the fp32 graph, on one fold's validation rows.

    python -m benchmarks.int8_schemes --run runs/NAME --model models/NAME

"batch drift" is the largest change of a row's score between batches of 16 sequences and one
sequence per pass: 0 means per-row deterministic. Same process, same pre-tokenised inputs.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks._results import append_results, markdown_table, phrase_validation, timed_scores
from export.variants import quantize_static_int8


def measure(path: Path, inputs, pad: int, batch: int, threads: int) -> tuple[np.ndarray, float]:
    from inference.backend.session import OnnxRunner

    return timed_scores(OnnxRunner.create(path, "cpu", threads), inputs, pad, batch)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="training run folder (validation rows)")
    p.add_argument("--model", required=True, help="exported model folder (fused fp32 and dynamic int8 graphs)")
    p.add_argument("--max-rows", type=int, default=2000, help="validation rows (whole anchors)")
    p.add_argument("--calibration", type=int, default=100, help="sequences the static scales are calibrated on")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args()

    from solution.phrase.evaluate import pearson

    model_dir = Path(args.model)
    base, inputs, labels, pad, fp32_graph = phrase_validation(Path(args.run), model_dir, 0, args.max_rows)
    calibration = [feeds for _, feeds in inputs.batches(1, pad, base.input_names)][: args.calibration]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        graphs = {"fp32": fp32_graph, "int8 dynamic": model_dir / base.manifest["variants"]["int8"][0],
                  "int8 static (QDQ, min/max)": quantize_static_int8(fp32_graph, Path(tmp) / "static.onnx",
                                                                      calibration)}
        reference = None
        for name, graph in graphs.items():
            batched, rate16 = measure(graph, inputs, pad, 16, args.threads)
            alone, rate1 = measure(graph, inputs, pad, 1, args.threads)
            reference = batched if reference is None else reference
            rows.append([name, f"{rate16:.0f}", f"{rate1:.0f}", pearson(alone, labels),
                         f"{pearson(alone, labels) - pearson(reference, labels):+.4f}",
                         f"{np.abs(batched - alone).max():.1e}"])
            print(rows[-1], flush=True)
    table = markdown_table(["graph", "pairs/s, 16 per pass", "pairs/s, 1 per pass", "Pearson (1 per pass)",
                            "Δ vs fp32", "batch drift (max abs, 16 vs 1 per pass)"], rows)
    append_results("int8 schemes: per-row determinism and speed", table, append=not args.no_append,
                   notes=f"fold 0, {inputs.n_rows} validation rows in {len(inputs)} sequences, {args.threads} threads; "
                         f"static scales calibrated on {min(args.calibration, len(inputs))} sequences")


if __name__ == "__main__":
    main()
