"""Score phrase pairs with an exported phrase matcher (numpy + tokenizers + onnxruntime; no torch).

The input is built exactly as at training time (``inference/phrase/inputs.py``): in the ``multi`` layout
one sequence per anchor+context group *of the input* (chunked at the training ``max_targets`` and
``max_length``) scores all its targets at once; in the ``pair`` layout one sequence per row. Sequences
are batched by token length, scored by each exported fold's graph (averaged), and the scores
returned in input order.

Example:
    >>> from inference import PhraseScorer
    >>> scorer = PhraseScorer.load("models/NAME")                          # doctest: +SKIP
    >>> scorer.score([("abatement", "abatement of pollution", "A47")])     # doctest: +SKIP
    array([0.52], dtype=float32)
    >>> scorer.providers, scorer.variant                                   # doctest: +SKIP
    (['CPUExecutionProvider'], 'int8')
    >>> scorer.score_csv("data/uspppm/test.csv", "submissions/NAME.csv")  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.backend.manifest import MANIFEST, Manifest, ModelFolderError, is_count, read_manifest
from inference.backend.openvino_runner import RuntimeMissingError
from inference.backend.runtime import Engine, Runner, RunsOnEngine, add_runtime_argument, candidate_engines, fastest
from inference.backend.session import DEVICE_HELP, DEVICES, DeviceError, sequences_per_pass, wants_cuda
from inference.backend.tokens import TextEncoder
from inference.backend.variants import VARIANTS, VARIANTS_RULE
from inference.cpc import CpcVocab
from inference.io import (
    DataError,
    OutputError,
    PairTable,
    check_output_path,
    is_cpc_class,
    is_missing,
)
from inference.phrase.inputs import PhraseInputs, Preprocessor, TableContexts
from inference.phrase.multi import MIN_LENGTH
from inference.phrase.stream import (
    BUCKET_ROWS,
    pearson_of_labels,
    progress_bar,
    score_buckets,
    scratch_folder,
    split_pairs,
    warnings_once,
    write_ids_and_scores,
)
from inference.template import InputTemplate
from inference.validate import check_positive, positive_int, text_problem

log = logging.getLogger(__name__)
SILENT = logging.getLogger("inference.phrase.scorer.silent")  # per-bucket context warnings: said once per file
SILENT.addHandler(logging.NullHandler())
SILENT.propagate = False


@dataclass
class ScoredFile:
    """What :meth:`PhraseScorer.score_file` did: the scores in file order, and (where the file has a score
    column) the Pearson against it and the rows it was measured on."""

    scores: np.ndarray
    labels: tuple[float, int] | None = None

KIND = "phrase-scorer"


def table_from_pairs(pairs: Sequence[Sequence[str]], path: str = "<pairs>") -> PairTable:
    """Validate ``[(anchor, target, context), ...]`` like :func:`read_pairs` does a CSV.

    "line N" in errors is the 1-based position in ``pairs``. Context codes are upper-cased.
    """
    errors: list[str] = []
    columns: dict[str, list] = {"id": [], "anchor": [], "target": [], "context": []}
    for n, pair in enumerate(pairs, start=1):
        if isinstance(pair, str) or len(pair) != 3:
            errors.append(f"line {n}: expected (anchor, target, context), got {pair!r}")
            continue
        for col, value in zip(("anchor", "target", "context"), pair):
            problem = text_problem(value)
            if problem or is_missing(value):
                errors.append(f"line {n}, column '{col}': {problem or f'empty value {value!r}'}")
        anchor, target, context = (str(v).strip() for v in pair)
        if not is_missing(context) and not is_cpc_class(context.upper()):
            errors.append(f"line {n}, column 'context': {context!r} is not a CPC class code like 'A47'")
        columns["id"].append(str(n - 1))
        columns["anchor"].append(anchor)
        columns["target"].append(target)
        columns["context"].append(context.upper())
    if errors:
        listing = "\n  ".join(errors[:10])
        raise DataError(f"{path}: {len(errors)} problem(s):\n  {listing}")
    return PairTable(path, columns, list(range(1, len(columns["id"]) + 1)))


# What the loader reads from the manifest, with what each must be (checked before any file is opened)
MANIFEST_RULES = {
    "max_length": (f"an integer >= {MIN_LENGTH}", lambda v: is_count(v, MIN_LENGTH)),
    "pad_id": ("an integer >= 0", lambda v: is_count(v, 0)),
    "folds": ("a non-empty list of fold numbers", lambda v: isinstance(v, list) and v and all(is_count(f) for f in v)),
    "variants": VARIANTS_RULE,
    "tokenizer": ("a file name", lambda v: isinstance(v, str) and v),
    "template": ("a file name", lambda v: isinstance(v, str) and v),
    "cpc_vocab": ("a file name", lambda v: isinstance(v, str) and v),
}


def default_batch(cuda: bool, layout: str) -> int:
    """Sequences per pass unless asked: 64 on CPU and 256 on CUDA in the pair layout, a quarter of that in
    the multi layout (a sequence holds a group's targets)."""
    return (256 if cuda else 64) // (4 if layout == "multi" else 1)


def forward_batch(variant: str, batch_size: int | None, cuda: bool, layout: str) -> int:
    """Sequences per forward pass: ``batch_size`` or :func:`default_batch`; int8 always one
    (:func:`~inference.backend.session.sequences_per_pass`)."""
    if variant == "int8" and batch_size not in (None, 1):
        log.warning("int8 scores one sequence per forward pass (dynamic activation scales would tie a row's "
                    "score to its batch mates); batch_size=%d applies to the other variants", batch_size)
    return sequences_per_pass(variant, batch_size or default_batch(cuda, layout))


def cpu_variant(manifest: Manifest) -> str:
    """The onnxruntime CPU default: int8 for multi-layout models, fp32 for pair-layout ones. int8 runs one
    sequence per pass (per-row deterministic): cheap for the multi layout's long sequences, but for short
    pairs slower than batched fp32 (docs/decisions/int8-one-sequence-per-pass.md)."""
    return "int8" if manifest.get("layout", "pair") == "multi" else "fp32"


def probe_table(vocab: CpcVocab, layout: str) -> PairTable:
    """Rows shaped like a real file's for timing the runtimes: 8 anchor+context groups of 20 targets
    (multi layout: 8 sequences of ~100 tokens) or of 4 (pair layout: 32 short sequences)."""
    context = min(vocab.class_titles) if vocab.class_titles else "A01"
    targets = 20 if layout == "multi" else 4
    return table_from_pairs([(f"probe anchor phrase {g}", f"probe target phrase number {g} {t}", context)
                             for g in range(8) for t in range(targets)], path="<runtime probe>")


@dataclass
class PhraseScorer(RunsOnEngine):
    """An exported phrase matcher ready to score; build it with :meth:`load`."""

    manifest: Manifest
    preprocess: Preprocessor
    runners: list[Runner]  # one per exported fold; scores are averaged
    engine: Engine  # the runtime and variant that run them
    batch_size: int
    orders: int = 1  # sibling orders each row is scored in, averaged (Preprocessor.build_orders)

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str = "auto", variant: str = "auto",
             batch_size: int | None = None, threads: int | None = None, orders: int | None = None,
             runtime: str = "auto") -> PhraseScorer:
        """Check the folder (manifest, sha256 of every file used) and open the graphs on ``device``.

        ``device``: "auto" (CUDA if onnxruntime can use it, else CPU with one warning) | "cpu" | "cuda".
        ``runtime``: "auto" (on CPU the fastest of onnxruntime and OpenVINO, measured once per machine:
        :mod:`inference.backend.runtime`) | "onnxruntime" | "openvino" (``pip install ".[openvino]"``).
        ``variant``: "auto" (the fastest measured on CPU, fp16 on CUDA) | "fp32" | "int8" | "fp16" |
        "bf16" (OpenVINO: the fp32 graph at bf16 precision, on CPUs with native bf16).
        ``threads``: intra-op threads on CPU (default: the cores this process may use).
        ``orders``: sibling orders each row is scored in and averaged over (default: the training run's
        ``sibling_orders``, as recorded in the manifest; 1 = targets by text only, the fastest).
        """
        if device not in DEVICES:
            raise ValueError(f"device {device!r}: expected one of {', '.join(DEVICES)}")
        check_positive("batch_size", batch_size, allow_none=True)
        check_positive("threads", threads, allow_none=True)
        check_positive("orders", orders, allow_none=True)
        manifest = read_manifest(folder, KIND, MANIFEST_RULES)
        if len(manifest["variants"]["fp32"]) != len(manifest["folds"]):
            raise ModelFolderError(f"{manifest.folder}: {len(manifest['folds'])} folds but "
                                   f"{len(manifest['variants']['fp32'])} fp32 graphs in {MANIFEST}; re-export the model")
        engines = candidate_engines(manifest, runtime, variant, device, cpu_variant(manifest))
        manifest.verify([manifest["tokenizer"], manifest["template"], manifest["cpc_vocab"]])
        preprocess = read_preprocessor(manifest)
        engine, first = cls._open_first(manifest, engines, device, preprocess, batch_size, threads)
        if wants_cuda(device) and not first.on_cuda:
            # "auto" fell back to CPU (warned once): the CPU's pick instead of fp16 on CPU
            cpu_engines = candidate_engines(manifest, runtime, variant, "cpu", cpu_variant(manifest))
            if cpu_engines != [engine]:
                engine, first = cls._open_first(manifest, cpu_engines, "cpu", preprocess, batch_size, threads)
        # the other folds go where the first one went (no second fallback warning, same providers)
        rest = [engine.open(manifest.path(g), "cuda" if first.on_cuda else "cpu", threads)
                for g in engine.graphs(manifest)[1:]]
        trained_orders = manifest.get("sibling_orders", 1)  # models exported before it: file order only
        if not is_count(trained_orders, 1):
            raise ModelFolderError(f"{manifest.folder}: field 'sibling_orders' is {trained_orders!r}, expected an "
                                   "integer >= 1; re-export the model")
        return cls(manifest, preprocess, [first, *rest], engine,
                   forward_batch(engine.variant, batch_size, first.on_cuda, preprocess.template.layout), orders or trained_orders)

    @staticmethod
    def _open_first(manifest: Manifest, engines: list[Engine], device: str, preprocess: Preprocessor,
                    batch_size: int | None, threads: int | None) -> tuple[Engine, Runner]:
        """The engine to run (timed against the others where several may) and its first fold's graph."""
        def probe_feeds(engine: Engine, runner: Runner) -> list[dict]:
            inputs = preprocess(probe_table(preprocess.vocab, preprocess.template.layout))
            per_pass = sequences_per_pass(engine.variant, batch_size or default_batch(False, preprocess.template.layout))
            return [feeds for _, feeds in inputs.batches(per_pass, preprocess.encoder.pad_id, runner.input_names)]

        return fastest(engines, manifest, device, threads, probe_feeds)

    @property
    def providers(self) -> list[str]:
        """What really runs the graphs, read back from the runtime (onnxruntime's session providers, or
        OpenVINO's device and precision)."""
        return self.runners[0].providers

    @property
    def input_names(self) -> list[str]:
        return self.runners[0].input_names

    def score_inputs(self, inputs: PhraseInputs) -> np.ndarray:
        """Scores of prepared inputs, in row order (averaged over the fold graphs).

        One graph at a time over all the sequences, so each graph's weights stay in the CPU caches
        while it runs (docs/decisions/fold-graphs-one-at-a-time.md).
        """
        per_fold = np.full((len(self.runners), inputs.n_rows), np.nan, dtype=np.float32)
        for runner, scores in zip(self.runners, per_fold):
            for idx, feeds in inputs.batches(self.batch_size, self.preprocess.encoder.pad_id, self.input_names):
                inputs.scatter(idx, runner.run(feeds), scores)
        return per_fold.mean(axis=0)

    def score_table(self, table: PairTable, contexts: TableContexts | None = None) -> np.ndarray:
        """Scores in row order, averaged over the fold graphs and :attr:`orders` sibling orders."""
        if not len(table):
            return np.zeros(0, dtype=np.float32)
        contexts = contexts or TableContexts.of(table, self.preprocess.vocab)
        return np.mean([self.score_inputs(inputs) for inputs in self.preprocess.build_orders(table, contexts, self.orders)],
                       axis=0)

    def score(self, pairs: Sequence[Sequence[str]]) -> np.ndarray:
        """Scores in [0, 1] of ``[(anchor, target, context), ...]``; targets are grouped within this list."""
        return self.score_table(table_from_pairs(pairs))

    def score_csv(self, input_csv: str | os.PathLike, output_csv: str | os.PathLike) -> np.ndarray:
        """Score an ``id,anchor,target,context`` CSV and write ``id,score`` atomically, in input order; returns
        the scores (:meth:`score_file` says more)."""
        return self.score_file(input_csv, output_csv).scores

    def score_file(self, input_csv: str | os.PathLike, output_csv: str | os.PathLike, progress: bool = False,
                   rows_per_bucket: int = BUCKET_ROWS) -> ScoredFile:
        """Score a CSV of any size in memory bounded by ``rows_per_bucket`` rows (plus 12 bytes a row), the
        scores equal to scoring it whole (:mod:`inference.phrase.stream`); ``id,score`` is written atomically,
        in input order. The output path is checked first: a folder, the input itself or an unwritable place
        is refused before any scoring. A header without rows (an empty shard) gives a header-only output.
        Where the file has a ``score`` column, the Pearson of the scores against it comes back too."""
        output = check_output_path(output_csv, [input_csv])
        vocab = self.preprocess.vocab
        with scratch_folder(output) as work:
            split = split_pairs(input_csv, Path(work), rows_per_bucket=rows_per_bucket, vocab=vocab)
            if split.unknown_classes:
                log.warning("%s: %d row(s) have a context class the model was not trained on (%s); using the "
                            "section title and the section embedding for them", input_csv,
                            sum(split.unknown_classes.values()), ", ".join(sorted(split.unknown_classes)[:10]))
            advance, close = progress_bar(split.n_rows, progress)
            try:
                with warnings_once():
                    scores = score_buckets(split, lambda t: self.score_table(t, TableContexts.of(t, vocab, SILENT)),
                                           advance)
            finally:
                close()
            write_ids_and_scores(split, scores, output)
        return ScoredFile(scores, pearson_of_labels(split, scores))


def read_preprocessor(manifest: Manifest) -> Preprocessor:
    """The folder's tokenizer, template and CPC vocabulary as one preprocessor. They passed their sha256
    check, so a file that does not parse is a damaged or hand-made folder: one error naming it."""
    names = {"tokenizer": manifest["tokenizer"], "template": manifest["template"], "cpc_vocab": manifest["cpc_vocab"]}
    try:
        encoder = TextEncoder.load(manifest.path(names["tokenizer"]), manifest["max_length"], manifest["pad_id"])
        template = InputTemplate.from_dict(json.loads(manifest.path(names["template"]).read_text(encoding="utf-8")))
        return Preprocessor(template, CpcVocab.load(manifest.path(names["cpc_vocab"])), encoder)
    except ModelFolderError:
        raise
    except Exception as err:  # tokenizers raises bare Exceptions; JSON, key and type errors from a bad template
        reason = " ".join(str(err).split())[:200]
        raise ModelFolderError(f"{manifest.folder}: its tokenizer, template or CPC vocabulary ({', '.join(names.values())}) "
                               f"cannot be read ({type(err).__name__}: {reason}); re-export the model") from None


# ---- CLI: `python -m inference score` (registered in inference/__main__.py) ----

def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "score", help="score phrase pairs (a CSV) with an exported phrase matcher",
        description="Score an id,anchor,target,context CSV with a model folder written by `python -m export`; "
                    "writes id,score in input order, atomically. Targets are grouped by anchor+context within "
                    "the input file, as at training time.",
        epilog="example: python -m inference score --model models/NAME --input data/uspppm/test.csv "
               "--output submissions/NAME.csv")
    p.add_argument("--model", required=True, help="exported model folder (holds manifest.json), e.g. models/NAME")
    p.add_argument("--input", required=True, help="CSV with id,anchor,target,context (extra columns are ignored)")
    p.add_argument("--output", required=True, help="where to write id,score (parent folders are created)")
    p.add_argument("--device", default="auto", choices=DEVICES, help=DEVICE_HELP)
    add_runtime_argument(p)
    p.add_argument("--variant", default="auto", choices=VARIANTS,
                   help="auto = the fastest measured on CPU, fp16 on CUDA; fp32 = exact; int8 (onnxruntime); fp16; "
                        "bf16 = the fp32 graph at bf16 precision on OpenVINO (CPUs with native bf16) (default: auto)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="sequences per forward pass of the fp32/fp16 graphs, batched by length (default: 64 on CPU, "
                        "256 on CUDA in the pair layout; a quarter of that in the multi layout, where a sequence holds "
                        "a group's targets); int8 (the CPU default) always runs one, so a score never depends on its "
                        "batch mates")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU intra-op threads (default: the cores this process may use)")
    p.add_argument("--orders", type=positive_int, default=None,
                   help="score each row in this many orders of its sibling targets and average (targets by text, "
                        "then seeded shuffles; the same whatever the file's row order; costs that many passes; "
                        "default: the training run's, from the manifest)")
    p.add_argument("--labels", action="store_true",
                   help="where the input has a score column (0, 0.25, ..., 1), print the Pearson of the scores against it")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true",
                   help="print the summary (rows, output, runtime, variant, providers, folds, orders; with --labels "
                        "pearson, labelled_rows) as JSON")
    p.set_defaults(func=run_score)
    return p


def run_score(args: argparse.Namespace) -> None:
    try:
        scorer = PhraseScorer.load(args.model, args.device, args.variant, args.batch_size, args.threads, args.orders,
                                   args.runtime)
        scored = scorer.score_file(args.input, args.output, progress=not args.quiet)
    except DataError as err:
        raise SystemExit(f"data error: {err}") from None
    except (ModelFolderError, DeviceError, OutputError, RuntimeMissingError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    rows = len(scored.scores)
    if not rows:
        print(f"note: {args.input} has a header and no rows; wrote {args.output} with the header only", file=sys.stderr)
    summary = {"rows": rows, "output": str(args.output), "runtime": scorer.runtime, "variant": scorer.variant,
               "providers": scorer.providers, "fold_graphs": len(scorer.runners), "orders": scorer.orders}
    if args.labels:
        pearson, labelled = scored.labels or (None, 0)
        summary.update(pearson=None if pearson is None or not np.isfinite(pearson) else round(pearson, 6),
                       labelled_rows=labelled)
    if args.json:
        print(json.dumps(summary, allow_nan=False))
        return
    print(f"wrote {rows} scores to {args.output} ({scorer.runtime} {scorer.variant}, {len(scorer.runners)} fold "
          f"graph(s), {scorer.orders} sibling order(s), providers {scorer.providers})")
    if args.labels:
        print(f"Pearson {summary['pearson']} against the score column ({summary['labelled_rows']} labelled rows)"
              if summary["labelled_rows"] else f"{args.input} has no score column to measure against")
