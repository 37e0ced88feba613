"""OpenVINO on a statically quantised graph (QDQ int8, calibrated scales) against OpenVINO bf16 on the fp32
graph and onnxruntime's dynamic int8, on one fold's validation rows of an exported phrase model.

    python -m benchmarks.openvino_int8 --run runs/NAME --model models/NAME

Static scales make a row's score independent of its batch mates, so the QDQ graph can run batched (the
dynamic int8 graph runs one sequence per pass); OpenVINO turns each QDQ pair into int8 kernels (VNNI or
AMX where the CPU has them). The question: is it faster than bf16 and within the parity gate's 0.005
Pearson? Same process, same inputs, each runner timed over all the rows after a warm-up pass.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._results import append_results, markdown_table, phrase_validation, timed_scores
from export.variants import quantize_static_int8


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="training run folder (its oof.csv gives the validation rows)")
    p.add_argument("--model", required=True, help="the run's exported model folder (fused fp32 + dynamic int8)")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--max-rows", type=int, default=2000, help="validation rows (whole anchors)")
    p.add_argument("--calibration", type=int, default=128, help="sequences the static scales are calibrated on")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per pass for the batched runners")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args()

    from inference.backend.openvino_runner import OpenVinoRunner, cpu_precisions
    from inference.backend.session import OnnxRunner
    from solution.phrase.evaluate import pearson

    base, inputs, labels, pad, fp32_graph = phrase_validation(Path(args.run), Path(args.model), args.fold,
                                                              args.max_rows)
    # calibration: sequences spread over every length (batches come sorted by length), one a pass
    singles = [feeds for _, feeds in inputs.batches(1, pad, base.input_names)]
    calibration = singles[:: max(1, len(singles) // args.calibration)][: args.calibration]
    half = "bf16" if "bf16" in cpu_precisions() else "fp32"
    rows, reference = [], None
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        qdq = quantize_static_int8(fp32_graph, Path(tmp) / "qdq.onnx", calibration)
        quantise_s = time.perf_counter() - start
        runners = [
            ("onnxruntime fp32", OnnxRunner.create(fp32_graph, "cpu", args.threads), args.batch_size),
            ("onnxruntime int8 dynamic (1 per pass)",
             OnnxRunner.create(Path(args.model) / base.manifest["variants"]["int8"][args.fold], "cpu", args.threads), 1),
            (f"OpenVINO {half} (fp32 graph)", OpenVinoRunner.create(fp32_graph, half, args.threads), args.batch_size),
            (f"OpenVINO int8 static QDQ (rest {half})", OpenVinoRunner.create(qdq, half, args.threads), args.batch_size),
        ]
        for name, runner, batch in runners:
            scores, rate = timed_scores(runner, inputs, pad, batch)
            reference = scores if reference is None else reference
            alone = timed_scores(runner, inputs, pad, 1)[0] if batch > 1 else scores
            rows.append([name, batch, f"{rate:.0f}", f"{pearson(scores, labels):.4f}",
                         f"{pearson(scores, labels) - pearson(reference, labels):+.4f}",
                         f"{np.abs(scores - reference).max():.4f}", f"{np.abs(scores - alone).max():.1e}"])
            print(rows[-1], flush=True)
    table = markdown_table(["runner", "sequences per pass", "pairs/s", "Pearson", "Δ vs onnxruntime fp32",
                            "max abs diff vs fp32", "batch drift (vs 1 per pass)"], rows)
    append_results("OpenVINO int8 (static QDQ) vs bf16 and onnxruntime int8, one fold", table,
                   append=not args.no_append,
                   notes=f"fold {args.fold}, {inputs.n_rows} validation rows in {len(inputs)} sequences, "
                         f"{args.threads} threads; static scales calibrated (min/max) on {len(calibration)} sequences "
                         f"in {quantise_s:.0f} s")


if __name__ == "__main__":
    main()
