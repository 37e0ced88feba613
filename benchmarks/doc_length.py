"""Document tokens at evaluation and indexing (``max_length``): every embedder metric at each length.

    python -m benchmarks.doc_length --runs runs/pr-s42 runs/pr-s7 runs/pr-s1 --lengths 128 256 [--queries]

For each run and length, the fine-tuned model and its zero-shot backbone, both encoding documents cut
at that many tokens (queries keep their own budget): the dense rows of ``solution.evaluate embedder
--max-length L --roles none`` (300 held-out titles over the whole corpus, macro-F1 and V-measure on all
held-out patents; ``--queries`` adds the synthetic-query roles, which encode the corpus a second time),
and the retrieval issue's hybrid setting (every held-out title searching the held-out abstracts only,
convex fusion with the default BM25 at the default dense weight). Means over runs, with each run's own
zero-shot as the ratio's baseline.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from benchmarks._results import append_results, fused_ndcg, heldout_dense, markdown_table, runs_parser
from inference.retrieval.fusion import DEFAULT_ALPHA
from solution.embedder.evaluate import EvalOptions, evaluate_systems, heldout_patents, torch_encoder
from solution.embedder.evaluators.ir import bm25_matrix
from solution.embedder.metrics import ir_metrics

METRICS = [  # row label, the evaluators' key
    ("t2a nDCG@10, whole corpus", "title2abstract"),
    ("synthetic queries nDCG@10 (mean of roles)", "queries"),
    ("macro-F1", "classification_macro_f1"),
    ("V-measure", "clustering_v_measure"),
]


def full_metrics(run_dir: Path, length: int, device: str, zero_shot: dict,
                 queries: bool = False) -> dict[str, dict[str, float]]:
    """{"fine-tuned" | "zero-shot": {row label: value}} over the whole corpus at ``length`` document tokens, as
    ``solution.evaluate embedder --max-length L`` scores them. ``zero_shot`` caches the backbone's encoders
    per length: every run searches the same corpus, and encoding it is nearly all of the time."""
    from solution.embedder.model import EmbedderConfig, build_encoder, load_run_encoder

    opts = EvalOptions(max_length=length, device=device, phrases="", query_roles=None if queries else ())
    patents, heldout = heldout_patents(opts, run_dir)
    tuned, tok, cfg = load_run_encoder(run_dir, device)
    if length not in zero_shot:
        zs, zs_tok = build_encoder(EmbedderConfig(backbone=cfg.backbone, lora=False))
        zero_shot[length] = (torch_encoder(zs.eval(), zs_tok, opts.query_max_length, opts),
                             torch_encoder(zs, zs_tok, length, opts))
    systems = {"fine-tuned": (torch_encoder(tuned, tok, cfg.query_max_length, opts), torch_encoder(tuned, tok, length, opts)),
               "zero-shot": zero_shot[length]}
    results = evaluate_systems(systems, patents, heldout, opts, None, {})
    return {name: {label: results[name][key]["ndcg@10"] if isinstance(results[name][key], dict) else results[name][key]
                   for label, key in METRICS if results[name].get(key)} for name in systems}


def heldout_only(run_dir: Path, length: int, device: str) -> dict[str, dict[str, float]]:
    """{"fine-tuned" | "zero-shot": {dense, hybrid nDCG@10}} on the held-out-only corpus."""
    task, dense = heldout_dense(run_dir, device, length)
    sparse = bm25_matrix(task)
    return {name: {"t2a nDCG@10, held-out-only corpus": ir_metrics(m, task.qrels)["ndcg@10"],
                   "hybrid t2a nDCG@10, held-out-only corpus": float(fused_ndcg(sparse, m, task.qrels, DEFAULT_ALPHA).mean())}
            for name, m in dense.items()}


def main(argv: list[str] | None = None) -> None:
    p = runs_parser(__doc__)
    p.add_argument("--lengths", nargs="+", type=int, default=[128, 256])
    p.add_argument("--queries", action="store_true", help="also the synthetic-query roles (twice the encoding)")
    args = p.parse_args(argv)

    scores: dict[tuple[Path, int], dict[str, dict[str, float]]] = {}
    zero_shot: dict = {}
    t0 = time.time()
    for run in args.runs:
        for length in args.lengths:
            full = full_metrics(run, length, args.device, zero_shot, args.queries)
            held = heldout_only(run, length, args.device)
            scores[run, length] = {system: {**full[system], **held[system]} for system in full}
            print(run.name, length, f"{time.time() - t0:.0f} s", scores[run, length], flush=True)
    labels = list(next(iter(scores.values()))["fine-tuned"])
    rows = []
    for label in labels:
        for system in ("fine-tuned", "zero-shot"):
            rows.append([f"{system}: {label}", *(f"{statistics.mean(scores[r, n][system][label] for r in args.runs):.4f}"
                                                 for n in args.lengths)])
    ratio = "t2a nDCG@10, whole corpus"

    def mean_ratio(n: int) -> float:
        return statistics.mean(scores[r, n]["fine-tuned"][ratio] / scores[r, n]["zero-shot"][ratio] for r in args.runs)

    rows.append(["t2a ratio fine-tuned / zero-shot (mean of runs' ratios)", *(f"{mean_ratio(n):.3f}x" for n in args.lengths)])
    per_run = "; ".join(f"{r.name}: " + ", ".join(
        f"{n} tokens t2a {scores[r, n]['fine-tuned'][ratio]:.4f} / zero-shot {scores[r, n]['zero-shot'][ratio]:.4f}, "
        f"hybrid {scores[r, n]['fine-tuned'][labels[-1]]:.4f}" for n in args.lengths) for r in args.runs)
    table = markdown_table(["metric (mean over runs)", *(f"{n} document tokens" for n in args.lengths)], rows)
    append_results("Embedder: document tokens at evaluation and indexing", table, append=not args.no_append,
                   notes=f"runs {', '.join(r.name for r in args.runs)}, each on its own held-out split and against "
                         f"zero-shot on it; hybrid at dense weight {DEFAULT_ALPHA:g} with the default BM25; per run: "
                         + per_run)


if __name__ == "__main__":
    main()
