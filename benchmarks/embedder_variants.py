"""Short embedder training variants, each changing one thing: what moves title -> abstract retrieval,
classification and clustering on this CPU.

    python -m benchmarks.embedder_variants                       # every variant (~50 min on 2 cores)
    python -m benchmarks.embedder_variants --only mqg,mqg-h0     # some of them

Each variant trains ``configs/embedder-cpu.toml`` (with the trainer defaults it was measured under,
``AS_MEASURED``) or the preset it names, plus its overrides, for a few minutes of wall clock into
``--runs-dir/probe-NAME`` (a finished run and its evaluation are reused), then scores the metrics
of the full benchmark (benchmarks/retrieval.py) that decide the targets, with the same definitions,
split and seeds: t2a nDCG@10 / MRR@10 (300 held-out titles, the whole corpus searched), macro-F1 and
V-measure on all held-out patents. Appends the table to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from benchmarks._results import AS_MEASURED, append_results, markdown_table

WITH_ICT = ["concept", "keyword", "question", "colloquial", "misspelled", "ict"]  # the default roles + ict
# Every row and cached evaluation was scored with documents cut at 256 tokens: pinned, whatever a run's own
# max_length (benchmarks/doc_length.py compares lengths)
DOC_TOKENS = 256

# name, what it changes, minutes of training, config overrides (on top of configs/embedder-cpu.toml, or of the
# file an override "config" names)
VARIANTS: list[tuple[str, str, float, dict]] = [
    ("mqg", "mqg, 1 BM25 hard negative (the preset until these rows)", 3, {"recipe": "mqg", "hard_negatives": 1}),
    ("mqg-abs", "mqg, documents = abstract only", 3, {"recipe": "mqg", "hard_negatives": 1, "doc_view": "abstract"}),
    ("align", "align, 1 BM25 hard negative", 3, {"recipe": "align", "hard_negatives": 1}),
    ("mqg-fullft", "mqg, full fine-tuning (lr 1e-4)", 3, {"recipe": "mqg", "hard_negatives": 1, "lora": False, "lr": 1e-4}),
    ("mqg-lr2e3", "mqg, LoRA lr 2e-3", 3, {"recipe": "mqg", "hard_negatives": 1, "lr": 2e-3}),
    ("mqg-b64h2", "mqg, batch 64, 2 hard negatives", 3, {"recipe": "mqg", "batch_size": 64, "hard_negatives": 2}),
    ("mqg-len256", "mqg, 256 training tokens", 3, {"recipe": "mqg", "hard_negatives": 1, "train_max_length": 256}),
    ("mqg-skip5", "mqg, negatives skip the 5 top BM25 hits (depth 50)", 3,
     {"recipe": "mqg", "hard_negatives": 1, "negative_skip_top": 5, "negative_top_k": 50}),
    ("mqg-h0", "mqg, in-batch negatives only", 3, {"recipe": "mqg", "hard_negatives": 0}),
    ("mqg-subclass", "mqg, 1 hard negative, batches of one CPC subclass", 3,
     {"recipe": "mqg", "hard_negatives": 1, "batch_grouping": "subclass"}),
    ("mqg-h0-subclass", "mqg, in-batch negatives only, batches of one CPC subclass", 3,
     {"recipe": "mqg", "hard_negatives": 0, "batch_grouping": "subclass"}),
    ("mqg-h0-nodrop", "mqg, in-batch negatives only, LoRA dropout 0", 3,
     {"recipe": "mqg", "hard_negatives": 0, "lora_dropout": 0.0}),
    ("combined-allviews", "combined, 1 hard negative, CPC loss over every encoded view", 10,
     {"recipe": "combined", "hard_negatives": 1, "cpc_all_views": True}),
    ("mqg-h0-10min", "mqg, in-batch negatives only (the CPU preset), 10 minutes", 10,
     {"recipe": "mqg", "hard_negatives": 0}),
    ("mqg-h0-ict-10min", "mqg + the ict role (inverse cloze), in-batch negatives only, 10 minutes", 10,
     {"recipe": "mqg", "hard_negatives": 0, "roles": WITH_ICT}),
    ("mqg-h0-10min-s7", "as mqg-h0-10min, seed 7 (another split, queries and init)", 10,
     {"recipe": "mqg", "hard_negatives": 0, "seed": 7}),
    ("mqg-h0-ict-10min-s7", "as mqg-h0-ict-10min, seed 7", 10,
     {"recipe": "mqg", "hard_negatives": 0, "seed": 7,
      "roles": WITH_ICT}),
    ("preset-retrieval", "configs/embedder-retrieval.toml (combined: queries + alignment, no CPC)", 10,
     {"config": "configs/embedder-retrieval.toml"}),
    ("preset-classify", "configs/embedder-classify.toml (combined: queries + alignment + CPC)", 10,
     {"config": "configs/embedder-classify.toml"}),
    ("preset-retrieval-ict", "configs/embedder-retrieval.toml + the ict role", 10,
     {"config": "configs/embedder-retrieval.toml", "roles": WITH_ICT}),
    ("preset-classify-ict", "configs/embedder-classify.toml + the ict role", 10,
     {"config": "configs/embedder-classify.toml", "roles": WITH_ICT}),
    ("preset-retrieval-nodrop", "configs/embedder-retrieval.toml, LoRA dropout 0", 10,
     {"config": "configs/embedder-retrieval.toml", "lora_dropout": 0.0}),
    ("preset-retrieval-fullft", "configs/embedder-retrieval.toml, full fine-tuning at lr 2e-5 (sentence-transformers')", 10,
     {"config": "configs/embedder-retrieval.toml", "lora": False, "lr": 2e-5}),
    ("preset-retrieval-abs-e3", "configs/embedder-retrieval.toml, documents = abstracts (one document pass per step), "
     "up to 3 epochs", 10, {"config": "configs/embedder-retrieval.toml", "doc_view": "abstract", "epochs": 3}),
    ("preset-retrieval-abs-q3-e3", "as preset-retrieval-abs-e3, 3 query roles per patent per step", 10,
     {"config": "configs/embedder-retrieval.toml", "doc_view": "abstract", "epochs": 3, "queries_per_patent": 3}),
    ("preset-retrieval-s7", "configs/embedder-retrieval.toml, seed 7 (another split, queries and init)", 10,
     {"config": "configs/embedder-retrieval.toml", "seed": 7}),
    ("preset-retrieval-s1", "configs/embedder-retrieval.toml, seed 1", 10,
     {"config": "configs/embedder-retrieval.toml", "seed": 1}),
    ("preset-retrieval-scale40", "configs/embedder-retrieval.toml, logit scale 40 (temperature 0.025)", 10,
     {"config": "configs/embedder-retrieval.toml", "scale": 40.0}),
    ("preset-retrieval-lr2e4", "configs/embedder-retrieval.toml, LoRA lr 2e-4", 10,
     {"config": "configs/embedder-retrieval.toml", "lr": 2e-4}),
    ("preset-retrieval-b64", "configs/embedder-retrieval.toml, batch 64 (63 in-batch negatives)", 10,
     {"config": "configs/embedder-retrieval.toml", "batch_size": 64}),
    ("preset-retrieval-b128-lr1e3", "configs/embedder-retrieval.toml, batch 128, LoRA lr 1e-3", 10,
     {"config": "configs/embedder-retrieval.toml", "batch_size": 128, "lr": 1e-3}),
    ("preset-retrieval-align2", "configs/embedder-retrieval.toml, title <-> abstract loss weight 2 (queries 1)", 10,
     {"config": "configs/embedder-retrieval.toml", "weight_align": 2.0}),
    ("preset-retrieval-align2-s7", "as preset-retrieval-align2, seed 7", 10,
     {"config": "configs/embedder-retrieval.toml", "weight_align": 2.0, "seed": 7}),
    ("preset-retrieval-align2-s1", "as preset-retrieval-align2, seed 1", 10,
     {"config": "configs/embedder-retrieval.toml", "weight_align": 2.0, "seed": 1}),
    ("preset-retrieval-s2", "configs/embedder-retrieval.toml, seed 2 (a fourth split)", 10,
     {"config": "configs/embedder-retrieval.toml", "seed": 2}),
    ("preset-retrieval-s3", "configs/embedder-retrieval.toml, seed 3 (a fifth split)", 10,
     {"config": "configs/embedder-retrieval.toml", "seed": 3}),
    ("preset-retrieval-subclass-s7", "as preset-retrieval-subclass, seed 7", 10,
     {"config": "configs/embedder-retrieval.toml", "batch_grouping": "subclass", "seed": 7}),
    ("preset-retrieval-subclass-s1", "as preset-retrieval-subclass, seed 1", 10,
     {"config": "configs/embedder-retrieval.toml", "batch_grouping": "subclass", "seed": 1}),
    ("preset-retrieval-subclass-s2", "as preset-retrieval-subclass, seed 2", 10,
     {"config": "configs/embedder-retrieval.toml", "batch_grouping": "subclass", "seed": 2}),
    ("preset-retrieval-subclass-s3", "as preset-retrieval-subclass, seed 3", 10,
     {"config": "configs/embedder-retrieval.toml", "batch_grouping": "subclass", "seed": 3}),
    ("preset-retrieval-subclass", "configs/embedder-retrieval.toml, batches of one main CPC subclass (harder in-batch "
     "negatives)", 10, {"config": "configs/embedder-retrieval.toml", "batch_grouping": "subclass"}),
    ("preset-retrieval-e2", "configs/embedder-retrieval.toml, up to 2 epochs (the 10 minutes stop it first)", 10,
     {"config": "configs/embedder-retrieval.toml", "epochs": 2}),
    ("preset-retrieval-e2-s2", "as preset-retrieval-e2, seed 2", 10,
     {"config": "configs/embedder-retrieval.toml", "epochs": 2, "seed": 2}),
    ("preset-retrieval-e2-s3", "as preset-retrieval-e2, seed 3", 10,
     {"config": "configs/embedder-retrieval.toml", "epochs": 2, "seed": 3}),
    ("preset-retrieval-len192", "configs/embedder-retrieval.toml, 192 training tokens (128: half the abstracts cut)",
     10, {"config": "configs/embedder-retrieval.toml", "train_max_length": 192}),
    ("preset-retrieval-len192-s7", "as preset-retrieval-len192, seed 7", 10,
     {"config": "configs/embedder-retrieval.toml", "train_max_length": 192, "seed": 7}),
    ("preset-retrieval-len192-s1", "as preset-retrieval-len192, seed 1", 10,
     {"config": "configs/embedder-retrieval.toml", "train_max_length": 192, "seed": 1}),
    ("preset-retrieval-len192-s2", "as preset-retrieval-len192, seed 2", 10,
     {"config": "configs/embedder-retrieval.toml", "train_max_length": 192, "seed": 2}),
    ("preset-retrieval-len192-s3", "as preset-retrieval-len192, seed 3", 10,
     {"config": "configs/embedder-retrieval.toml", "train_max_length": 192, "seed": 3}),
]


def evaluate(run_dir: Path | None, corpus: str, device: str, seed: int = 42) -> dict:
    """t2a nDCG@10 / MRR@10 over the whole corpus, macro-F1 and V-measure (cached in the run folder); a run
    is scored on its own held-out split, zero-shot (``run_dir`` None) on the split of ``seed``."""
    from solution.embedder.evaluate import (
        EvalOptions,
        build_tasks,
        heldout_patents,
        label_metrics,
        query_patents,
        torch_encoder,
    )
    from solution.embedder.evaluators.ir import evaluate_task
    from solution.embedder.model import EmbedderConfig, build_encoder, load_run_encoder

    opts = EvalOptions(corpus=corpus, device=device, seed=seed, max_length=DOC_TOKENS)
    if run_dir is None:
        enc, tok = build_encoder(EmbedderConfig(lora=False))
        enc.eval()
    else:
        enc, tok, _ = load_run_encoder(run_dir, device)
    patents, heldout = heldout_patents(opts, run_dir)
    t2a = build_tasks(patents, query_patents(heldout, opts), opts)[0]
    encode_q, encode_d = torch_encoder(enc, tok, opts.query_max_length, opts), torch_encoder(enc, tok, opts.max_length, opts)
    ir = evaluate_task(t2a, {"run": (encode_q, encode_d)})["run"]
    labels = label_metrics(encode_d, heldout, "title+abstract", opts.seed)
    return {"t2a_ndcg10": ir["ndcg@10"], "t2a_mrr10": ir["mrr@10"], "f1": labels["classification_macro_f1"],
            "v": labels["clustering_v_measure"]}


def cached(path: Path, compute) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(argv: list[str] | None = None) -> None:
    from solution.runtime import tune_malloc

    tune_malloc()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--corpus", default="data/patents/a61_patents.csv")
    p.add_argument("--config", default="configs/embedder-cpu.toml")
    p.add_argument("--only", type=lambda s: [v for v in s.split(",") if v], help="comma-separated variant names")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-append", action="store_true", help="print only; do not touch RESULTS.md")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from solution.config import build_config
    from solution.embedder.config import EmbedderTrainConfig
    from solution.embedder.train import run

    runs_dir = Path(args.runs_dir)
    chosen = [v for v in VARIANTS if not args.only or v[0] in args.only]
    zero, rows = {}, []
    for seed in sorted({v[3].get("seed", 42) for v in chosen} | {42}, key=lambda s: s != 42):
        # each split its own zero-shot: splits differ in difficulty by more than training gains
        name = "zero-shot" if seed == 42 else f"zero-shot-s{seed}"
        zero[seed] = cached(runs_dir / f"probe-{name}.json", lambda s=seed: evaluate(None, args.corpus, args.device, s))
        rows.append([name, f"packaged MiniLM, no training (split of seed {seed})", "-", "-", zero[seed]["t2a_ndcg10"],
                     "+0.0%", zero[seed]["t2a_mrr10"], zero[seed]["f1"], zero[seed]["v"]])
    for name, what, minutes, overrides in chosen:
        out = runs_dir / f"probe-{name}"
        state = out / "run_state.json"
        if not (state.exists() and json.loads(state.read_text()).get("complete")):
            base = overrides.get("config", args.config)
            keys = {**({} if "config" in overrides else AS_MEASURED), **overrides}
            keys.pop("config", None)
            cfg = build_config(base, {**keys, "corpus": args.corpus, "out": str(out), "budget_minutes": minutes,
                                      "val_patents": 0, "device": args.device}, EmbedderTrainConfig)
            t0 = time.time()
            run(cfg, resume=state.exists())
            print(f"{name}: trained in {time.time() - t0:.0f} s")
        got = cached(out / "variant_eval.json", lambda run_dir=out: evaluate(run_dir, args.corpus, args.device))
        steps = json.loads((out / "metrics.json").read_text())["steps"]
        rel = got["t2a_ndcg10"] / zero[overrides.get("seed", 42)]["t2a_ndcg10"] - 1
        rows.append([name, what, f"{minutes:g}", steps, got["t2a_ndcg10"], f"{rel:+.1%}", got["t2a_mrr10"], got["f1"],
                     got["v"]])
    table = markdown_table(["variant", "change", "train min", "steps", "t2a ndcg@10", "vs zero-shot", "t2a mrr@10",
                            "macro-F1", "V-measure"], rows)
    notes = (f"base {args.config} (LoRA r=8, lr 5e-4, bf16 only where the start-up probe times it faster, batch 32, "
             "128 training tokens) with the overrides named; "
             "300 held-out titles searched among the whole corpus; F1 / V-measure on all held-out patents; "
             "\"vs zero-shot\" against the zero-shot row of the variant's own split (seed)")
    append_results("Retrieval embedders: short training variants", table, notes=notes, append=not args.no_append)


if __name__ == "__main__":
    main()
