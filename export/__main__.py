"""``python -m export``: turn a training run into a self-checked, torch-free model folder.

    python -m export --run runs/NAME --out models/NAME          # fp32 + int8 (CPU) + fp16 (GPU) + manifest
    python -m export --run runs/NAME --out models/NAME --fold 0 --no-fp16
    python -m export --run runs/EMBEDDER --format sentence-transformers --out models/NAME-st
    python -m export --run runs/PHRASE --format huggingface --out models/NAME-hf

The run's kind is read from its folder (see ``EXPORTERS``) and the matching exporter writes the model
folder; the export exits non-zero, with the numbers, when a graph fails the parity gate.

Adding a kind: write a module with ``MARKER`` (a file only that kind of run holds),
``add_arguments(parser)`` (its own options, in an argument group) and ``main(args) -> int``, then
list it in ``EXPORTERS``. Modules that are not installed are skipped.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

from inference.validate import non_negative_float, positive_int

# kind -> module; the first whose MARKER file is in the run folder exports it.
EXPORTERS: dict[str, str] = {
    "phrase": "export.phrase",  # runs/NAME/model_config.json
    "embedder": "export.embedder",  # runs/NAME/embedder_config.json (retrieval embedders)
}


# --format -> the run kinds it takes (onnx: every kind, through EXPORTERS)
FORMATS: dict[str, tuple[str, ...]] = {"onnx": tuple(EXPORTERS), "sentence-transformers": ("embedder",),
                                       "huggingface": ("phrase",)}


def exporter_modules() -> dict[str, ModuleType]:
    found = {}
    for kind, name in EXPORTERS.items():
        if importlib.util.find_spec(name) is not None:
            found[kind] = importlib.import_module(name)
    return found


def build_parser(modules: dict[str, ModuleType]) -> argparse.ArgumentParser:
    from export.onnx_graph import DEFAULT_EXPORTER, OPSETS
    from export.onnx_graph import EXPORTERS as GRAPH_EXPORTERS
    from export.variants import INT8_ISAS

    p = argparse.ArgumentParser(prog="python -m export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="training run folder, e.g. runs/NAME")
    p.add_argument("--out", required=True, help="model folder to write, e.g. models/NAME")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--format", default="onnx", choices=FORMATS,
                   help="onnx: the project's torch-free model folder (default); sentence-transformers: an embedder "
                        "run as a folder SentenceTransformer(DIR) loads, with onnx/model.onnx for backend='onnx'; "
                        "huggingface: a phrase run's merged folds as save_pretrained folders (+ heads) to fine-tune on")
    p.add_argument("--exporter", default=DEFAULT_EXPORTER, choices=GRAPH_EXPORTERS,
                   help="torch.onnx exporter: legacy (TorchScript tracer: the graph onnxruntime's optimizer fuses) or "
                        f"dynamo (torch.export: runs unfused) (default: {DEFAULT_EXPORTER})")
    p.add_argument("--opset", type=int, default=None,
                   help="ONNX opset (default: " + ", ".join(f"{v} for {k}" for k, v in OPSETS.items()) + ")")
    p.add_argument("--no-fuse", action="store_true",
                   help="keep the graph as exported (no Attention/SkipLayerNorm/BiasGelu fusion)")
    p.add_argument("--no-int8", action="store_true", help="skip the int8 graph (dynamic per-channel quantisation, for CPU)")
    p.add_argument("--no-fp16", action="store_true", help="skip the fp16 graph (for GPU)")
    p.add_argument("--int8-isa", default="avx512_vnni", choices=INT8_ISAS,
                   help="CPU the int8 graph is tuned for: avx2 uses reduced-range weights (default: avx512_vnni)")
    p.add_argument("--max-abs-diff", type=non_negative_float, default=1e-4,
                   help="parity gate: max |fp32 graph - PyTorch| on the validation rows (default: 1e-4)")
    p.add_argument("--max-pearson-loss", type=non_negative_float, default=0.005,
                   help="parity gate: max drop of validation Pearson of int8/fp16 vs the fp32 graph; a variant that "
                        "loses more is left out of the model folder (default: 0.005)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="batch size of the parity checks (default: 64)")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages too")
    for module in modules.values():
        module.add_arguments(p)
    return p


def run_kind(run_dir: Path, modules: dict[str, ModuleType]) -> str:
    for kind, module in modules.items():
        if (run_dir / module.MARKER).is_file():
            return kind
    markers = ", ".join(f"{m.MARKER} ({k})" for k, m in modules.items())
    raise SystemExit(f"{run_dir}: not a training run this tool can export (expected one of: {markers})")


def main(argv: list[str] | None = None) -> int:
    modules = exporter_modules()
    args = build_parser(modules).parse_args(sys.argv[1:] if argv is None else argv)
    # WARNING by default: onnxruntime's quantiser logs one INFO line per tensor on the root logger.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from export.parity import ParityError

    kind = run_kind(Path(args.run), modules)
    if args.format != "onnx" and kind not in FORMATS[args.format]:
        raise SystemExit(f"--format {args.format} exports {' or '.join(FORMATS[args.format])} runs; {args.run} is a "
                         f"{kind} run")
    try:
        if args.format == "sentence-transformers":
            from export.sentence_transformers_folder import main as export_folder

            return export_folder(args)
        if args.format == "huggingface":
            from export.huggingface_folder import main as export_folder

            return export_folder(args)
        return modules[kind].main(args)
    except ParityError as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    sys.exit(main())
