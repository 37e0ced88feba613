"""Export a phrase-matcher run (runs/NAME) to a model folder that ``inference.PhraseScorer`` loads.

    python -m export --run runs/NAME --out models/NAME

Per trained fold: rebuild the model, merge LoRA into the base weights, export backbone + CPC fusion +
ordinal head as one graph (inputs input_ids, attention_mask[, token_type_ids][, span_ids], section_ids,
class_ids; output score, one per row in the pair layout and one per target slot (batch, sequence) in
the multi layout; dynamic batch and sequence), derive int8 and fp16 graphs, and pass the parity gate on
the fold's validation rows (from the run's oof.csv). The scorer averages the folds, as training's
submission does. Files are written to ``.NAME.partial`` beside the target and moved into place only
when the fp32 graphs passed, with ``manifest.json`` written last; an int8 or fp16 variant that loses
more Pearson than the gate allows in any fold is left out, and the manifest's ``parity`` says why.

Example:
    >>> manifest = export_run(PhraseExportOptions(run="runs/NAME", out="models/NAME"))   # doctest: +SKIP
    >>> manifest["variants"]                                                           # doctest: +SKIP
    {'fp32': ['model.onnx'], 'int8': ['model.int8.onnx'], 'fp16': ['model.fp16.onnx']}
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from export.fusion import fuse_transformer
from export.model_card import write_model_card
from export.mpnet_attention import export_context
from export.onnx_graph import DEFAULT_EXPORTER, GraphSpec, default_opset, export_graph, graph_inputs
from export.parity import ParityGate
from export.staging import apply_gate, open_stage, publish
from export.variants import convert_fp16, quantize_int8
from inference.backend.manifest import write_manifest
from inference.backend.session import OnnxRunner, sequences_per_pass
from inference.backend.tokens import TextEncoder
from inference.cpc import CpcVocab
from inference.io import PairTable, read_pairs
from inference.phrase.inputs import PhraseInputs, Preprocessor
from inference.phrase.scorer import KIND
from inference.template import InputTemplate
from solution.phrase.data import model_input_names
from solution.phrase.data import preprocessor as training_preprocessor
from solution.phrase.predict import trained_folds

log = logging.getLogger(__name__)

MARKER = "model_config.json"  # what makes a run folder a phrase-matcher run


@dataclass
class PhraseExportOptions:
    run: str
    out: str
    fold: str = "all"  # "all" or one fold number
    exporter: str = DEFAULT_EXPORTER
    opset: int | None = None  # None: the exporter's default
    fuse: bool = True  # onnxruntime's transformer fusions (export/fusion.py)
    int8: bool = True
    fp16: bool = True
    int8_isa: str = "avx512_vnni"
    max_abs_diff: float = 1e-4
    max_pearson_loss: float = 0.005
    val_rows: int = 2000  # validation rows (whole anchors) the gate scores per fold; 0 = all
    batch_size: int = 64
    force: bool = False


class _Graph(nn.Module):
    """The matcher with the graph's inputs as positional arguments, in ``names`` order (ONNX input names follow it)."""

    def __init__(self, matcher: nn.Module, names: list[str]):
        super().__init__()
        self.matcher, self.names = matcher, names

    def forward(self, *inputs):
        return self.matcher(**dict(zip(self.names, inputs)))


def graph_spec(names: list[str]) -> GraphSpec:
    """Dynamic batch and sequence axes; the multi layout's output has one score per slot (batch, sequence)."""
    per_token = {0: "batch", 1: "sequence"}
    inputs = {name: ({0: "batch"} if name in ("section_ids", "class_ids") else per_token) for name in names}
    return GraphSpec(inputs=inputs, outputs={"score": per_token if "span_ids" in names else {0: "batch"}})


def run_preprocessor(run_dir: Path) -> tuple[Preprocessor, int]:
    """The inference library's input builder over the run's own tokenizer, template and CPC vocabulary
    (the files the model folder ships), and the pad id."""
    from transformers import AutoTokenizer

    hf_tokenizer = AutoTokenizer.from_pretrained(run_dir / "tokenizer")
    pad_id = hf_tokenizer.pad_token_id if hf_tokenizer.pad_token_id is not None else 0
    max_length = int(json.loads((run_dir / "config.json").read_text())["max_length"])
    preprocess = Preprocessor(InputTemplate.from_dict(json.loads((run_dir / "template.json").read_text())),
                              CpcVocab.load(run_dir / "cpc_vocab.json"),
                              TextEncoder.load(run_dir / "tokenizer" / "tokenizer.json", max_length, pad_id))
    return preprocess, pad_id


def validation_rows(run_dir: Path, fold: int, limit: int) -> PairTable:
    """The fold's validation rows with labels, from oof.csv, in file order; whole anchors up to ``limit`` rows."""
    path = run_dir / "oof.csv"
    if not path.is_file():
        raise SystemExit(f"{path}: missing; the parity gate needs the run's validation rows (is the run finished?)")
    table = read_pairs(path, require_score=True)
    with open(path, encoding="utf-8", newline="") as handle:
        folds = [int(row["fold"]) for row in csv.DictReader(handle)]
    keep = [i for i, f in enumerate(folds) if f == fold]
    if not keep:
        raise SystemExit(f"{path}: no validation rows of fold {fold}")
    if limit and len(keep) > limit:  # cut at an anchor boundary so each row keeps its training-time group
        anchors = table.columns["anchor"]
        cut = limit
        while cut < len(keep) and anchors[keep[cut]] == anchors[keep[cut - 1]]:
            cut += 1
        keep = keep[:cut]
    return table.subset(keep)


def torch_scores(model: nn.Module, inputs: PhraseInputs, pad_id: int, names: list[str], batch_size: int) -> np.ndarray:
    """PyTorch fp32 scores, in row order, of exactly the arrays the graphs get."""
    scores = np.full(inputs.n_rows, np.nan, dtype=np.float32)
    with torch.inference_mode():
        for idx, feeds in inputs.batches(batch_size, pad_id, names):
            inputs.scatter(idx, model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).numpy(), scores)
    return scores


def onnx_scores(path: Path, inputs: PhraseInputs, pad_id: int, batch_size: int) -> np.ndarray:
    runner = OnnxRunner.create(path, device="cpu")
    scores = np.full(inputs.n_rows, np.nan, dtype=np.float32)
    for idx, feeds in inputs.batches(batch_size, pad_id, runner.input_names):
        inputs.scatter(idx, runner.run(feeds), scores)
    return scores


def check_tokenizer(hf_tokenizer, preprocess: Preprocessor, table: PairTable) -> None:
    """The exported tokenizer.json must give the sequences that training's tokenizer gives."""
    ours = preprocess(table)
    training = training_preprocessor(hf_tokenizer, preprocess.template, preprocess.vocab,
                                     preprocess.encoder.max_length)(table)
    bad = [i for i, (a, b) in enumerate(zip(training.ids, ours.ids)) if a != b]
    if bad or len(ours.ids) != len(training.ids):
        i = bad[0] if bad else 0
        raise SystemExit(f"tokenizer.json gives other ids than the training tokenizer for {len(bad)} sequence(s), "
                         f"e.g. rows {ours.rows[i]}: {ours.ids[i]} vs {training.ids[i]}")


def file_names(fold: int, several: bool) -> dict[str, str]:
    stem = f"model.fold{fold}" if several else "model"
    return {"fp32": f"{stem}.onnx", "int8": f"{stem}.int8.onnx", "fp16": f"{stem}.fp16.onnx"}


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("patent-similarity", "torch", "transformers", "peft", "onnx", "onnxruntime"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    if found["patent-similarity"] == "not installed":  # run from a source checkout
        import configparser

        setup = configparser.ConfigParser()
        setup.read(Path(__file__).resolve().parents[1] / "setup.cfg")
        found["patent-similarity"] = setup.get("metadata", "version", fallback="unknown") + " (source tree)"
    return found


def export_fold(opts: PhraseExportOptions, run_dir: Path, stage: Path, fold: int, names: dict[str, str],
                preprocess: Preprocessor, pad_id: int, gate: ParityGate) -> tuple[list[str], dict]:
    """Export one fold's graphs into ``stage`` and run its parity checks; returns (graph inputs, timings)."""
    from solution.phrase.model import load_trained

    t0 = time.time()
    # eager attention: the softmax(QK^T)V pattern onnxruntime's optimizer fuses (sdpa traces into one it does not)
    model, hf_tokenizer = load_trained(run_dir, fold, "cpu", attn_implementation="eager")
    model.merge_lora()
    model.eval()
    spec = graph_spec(model_input_names(model, preprocess.template.layout))
    val = validation_rows(run_dir, fold, opts.val_rows)
    inputs = preprocess(val)
    check_tokenizer(hf_tokenizer, preprocess, val)
    labels = np.asarray(val.columns["score"], dtype=np.float32)

    # A real validation batch in file order (mixed lengths, so padding and masking are exercised).
    example_idx = list(range(min(len(inputs), opts.batch_size)))
    if len(example_idx) < 2:
        raise SystemExit(f"fold {fold}: need at least 2 validation sequences to export dynamic axes")
    feeds = inputs.feeds(example_idx, pad_id, spec.inputs)
    example = tuple(torch.from_numpy(feeds[name]) for name in spec.inputs)  # the graph's positional order
    with export_context(model, opts.fuse, opts.exporter):
        fp32 = export_graph(_Graph(model, list(spec.inputs)), example, spec, stage / names["fp32"], opts.exporter,
                            opts.opset)
    timings = {"export_s": time.time() - t0}
    fusion = {}
    if opts.fuse:
        t = time.time()
        arch = model.backbone.config
        fusion = fuse_transformer(fp32, arch.num_attention_heads, arch.hidden_size, arch.num_hidden_layers)
        timings["fuse_s"] = time.time() - t
    inputs_used = graph_inputs(fp32)

    reference = torch_scores(model, inputs, pad_id, list(spec.inputs), opts.batch_size)
    ort_fp32 = onnx_scores(fp32, inputs, pad_id, opts.batch_size)
    print(gate.check_fp32(f"fold{fold}/fp32", reference, ort_fp32, labels).line(), flush=True)
    if opts.int8:
        t = time.time()
        for ffn_down_fp32 in (False, True):  # every encoder MatMul int8 first; the FFN down-projections
            int8 = quantize_int8(fp32, stage / names["int8"], opts.int8_isa, ffn_down_fp32=ffn_down_fp32)
            # scored as it ships: one sequence per pass; back to fp32 if the gate says so
            scores8 = onnx_scores(int8, inputs, pad_id, sequences_per_pass("int8", opts.batch_size))
            if ffn_down_fp32 or gate.check_variant("trial", labels, ort_fp32, scores8, record=False).passed:
                break
        timings["int8_s"] = time.time() - t
        check = gate.check_variant(f"fold{fold}/int8", labels, ort_fp32, scores8)
        scheme = "FFN down-projections kept fp32" if ffn_down_fp32 else "every encoder MatMul int8"
        check.note = f"{check.note}; {scheme}" if check.note else scheme
        print(check.line(), flush=True)
    if opts.fp16:
        t = time.time()
        fp16 = convert_fp16(fp32, stage / names["fp16"])
        timings["fp16_s"] = time.time() - t
        try:  # ORT's CPU provider runs most fp16 kernels; where it cannot, the check needs a GPU
            scores16 = onnx_scores(fp16, inputs, pad_id, opts.batch_size)
        except Exception as err:  # any ORT failure here means "cannot check on CPU", not "bad graph"
            check = gate.skip(f"fold{fold}/fp16", f"not checked on CPU ({str(err).splitlines()[0][:160]})")
        else:
            check = gate.check_variant(f"fold{fold}/fp16", labels, ort_fp32, scores16)
        print(check.line(), flush=True)
    return inputs_used, {"timings_s": timings, "fused_operators": fusion}


def export_run(opts: PhraseExportOptions) -> dict:
    """Export the run; returns the manifest. Raises ParityError (files kept in the .partial folder) when an
    fp32 graph fails its parity check; drops an int8/fp16 variant that fails."""
    run_dir, out = Path(opts.run), Path(opts.out)
    for name in (MARKER, "config.json", "template.json", "cpc_vocab.json", "tokenizer/tokenizer.json"):
        if not (run_dir / name).is_file():
            raise SystemExit(f"{run_dir}: {name} missing; not a finished phrase-matcher run")
    available = trained_folds(run_dir)
    if opts.fold == "all":
        folds = available
    elif str(opts.fold).isdigit() and int(opts.fold) in available:
        folds = [int(opts.fold)]
    else:
        raise SystemExit(f"{run_dir}: fold {opts.fold} is not trained (trained: {available})")
    train_cfg = json.loads((run_dir / "config.json").read_text())
    stage = open_stage(out, opts.force)
    shutil.copy(run_dir / "tokenizer" / "tokenizer.json", stage / "tokenizer.json")
    shutil.copy(run_dir / "template.json", stage / "template.json")
    shutil.copy(run_dir / "cpc_vocab.json", stage / "cpc_vocab.json")
    preprocess, pad_id = run_preprocessor(run_dir)
    max_length = int(train_cfg["max_length"])

    torch.set_num_threads(torch.get_num_threads())
    gate = ParityGate("pearson", opts.max_abs_diff, opts.max_pearson_loss)
    variants: dict[str, list[str]] = {"fp32": []} | ({"int8": []} if opts.int8 else {}) | ({"fp16": []} if opts.fp16 else {})
    per_fold, inputs_used = {}, []
    for fold in folds:
        names = file_names(fold, len(folds) > 1)
        inputs_used, per_fold[str(fold)] = export_fold(opts, run_dir, stage, fold, names, preprocess, pad_id, gate)
        for variant in variants:
            variants[variant].append(names[variant])
    apply_gate(gate, stage, variants, f"export of {run_dir}")

    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {}
    body = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run": {"path": str(run_dir), "name": run_dir.name, "backbone": train_cfg.get("model")},
        "exporter": {"tool": f"torch.onnx.export(dynamo={opts.exporter == 'dynamo'})",
                     "opset": opts.opset or default_opset(opts.exporter),
                     "fusion": "onnxruntime.transformers.optimizer (bert fusions)" if opts.fuse else None,
                     "int8": f"onnxruntime quantize_dynamic, per-channel ({opts.int8_isa})" if opts.int8 else None,
                     "fp16": "onnxruntime.transformers.float16 (keep_io_types)" if opts.fp16 else None,
                     "versions": package_versions(), "python": sys.version.split()[0], "options": asdict(opts)},
        "inputs": inputs_used,
        "output": "score",
        "layout": preprocess.template.layout,
        "sibling_orders": int(train_cfg.get("sibling_orders", 1)),  # the scorer's default, as the run scored
        "max_length": max_length,
        "pad_id": pad_id,
        "tokenizer": "tokenizer.json",
        "template": "template.json",
        "cpc_vocab": "cpc_vocab.json",
        "folds": folds,
        "variants": variants,
        "training": {k: metrics.get(k) for k in ("oof_pearson", "fold_pearson", "precision", "wall_s")}
                    | {"n_val": {k: v.get("n_val") for k, v in metrics.get("folds", {}).items()}},
        "parity": gate.to_dict(),
        "fused_operators": {fold: info["fused_operators"] for fold, info in per_fold.items()},
        "timings_s": {fold: info["timings_s"] for fold, info in per_fold.items()},
    }
    files = ["tokenizer.json", "template.json", "cpc_vocab.json"] + [f for fs in variants.values() for f in fs]
    manifest = write_manifest(stage, KIND, body, files)
    write_model_card(stage, Path(out).name, KIND, body, train_cfg)
    publish(stage, out)
    return manifest


def add_arguments(parser) -> None:
    group = parser.add_argument_group("phrase-matcher runs (runs/NAME with model_config.json)")
    group.add_argument("--fold", default="all",
                       help="which trained fold to export: a number, or 'all' (one graph per fold; the scorer averages "
                            "them, as training's submission does) (default: all)")
    group.add_argument("--val-rows", type=int, default=2000,
                       help="validation rows per fold (whole anchors, from oof.csv) the parity gate scores; 0 = all "
                            "(default: 2000)")


def main(args) -> int:
    opts = PhraseExportOptions(run=args.run, out=args.out, fold=args.fold, exporter=args.exporter, opset=args.opset,
                               fuse=not args.no_fuse, int8=not args.no_int8, fp16=not args.no_fp16, int8_isa=args.int8_isa,
                               max_abs_diff=args.max_abs_diff, max_pearson_loss=args.max_pearson_loss,
                               val_rows=args.val_rows, batch_size=args.batch_size, force=args.force)
    manifest = export_run(opts)
    sizes = ", ".join(f"{name} {info['bytes'] / 2**20:.1f} MiB" for name, info in manifest["files"].items()
                      if name.endswith(".onnx"))
    print(f"exported {opts.run} -> {opts.out} (folds {manifest['folds']}; {sizes})")
    return 0
