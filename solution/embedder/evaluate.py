"""Evaluate embedders on held-out patents: IR (known-item and synthetic queries per role),
classification macro-F1, clustering V-measure, USPPPM phrase retrieval, with BM25, zero-shot and hybrid
baselines in one table.

    python -m solution.evaluate embedder --run runs/retrieval --corpus data/patents/a61_patents.csv
    python -m solution.evaluate embedder --model sentence-transformers/all-MiniLM-L6-v2   # zero-shot only

With ``--run`` the held-out patents are the run's own (split.json), so nothing it trained on is
scored; with only ``--model`` a split is drawn with the default seed and fraction.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.retrieval.fusion import DEFAULT_ALPHA

log = logging.getLogger("solution.embedder.evaluate")

COLUMNS = [("t2a ndcg@10", "title2abstract", "ndcg@10"), ("t2a mrr@10", "title2abstract", "mrr@10"),
           ("t2a R@1", "title2abstract", "recall@1"), ("t2a R@100", "title2abstract", "recall@100"),
           ("queries ndcg@10", "queries", "ndcg@10")]


@dataclass
class EvalOptions:
    corpus: str = "data/patents/a61_patents.csv"
    phrases: str = "data/uspppm/train.csv"
    cpc_titles: str = "data/cpc/ipc_section_class_subclass_titles.csv"
    max_patents: int = 300  # held-out patents used as queries (0 = all); classification and clustering use all
    # Other patents of the corpus searched alongside the scored ones (-1 = all, 0 = none). Known-item search
    # among a few hundred documents is nearly solved by any model; among the whole collection it separates
    # models (docs/retrieval.md). Distractors are never relevant, so training on them leaks nothing.
    distractors: int = -1
    max_phrase_groups: int = 200
    # document tokens; None = the run's own max_length (what its export indexes with; the zero-shot baseline
    # beside a run gets the same), or a plain model's default (EmbedderConfig.max_length)
    max_length: int | None = None
    query_max_length: int = 64
    # synthetic-query roles scored (None = every role; () = none, which skips encoding the corpus a second
    # time as title + abstract: title -> abstract, labels and phrases only)
    query_roles: tuple[str, ...] | None = None
    batch_size: int = 64
    alpha: float = DEFAULT_ALPHA  # convex fusion weight of the dense scores
    device: str = "cpu"
    precision: str = "auto"
    seed: int = 42
    heldout_fraction: float = 0.15

    def doc_tokens(self, config=None) -> int:
        """Document tokens for a run's ``EmbedderConfig`` (None: a plain model).

        >>> EvalOptions().doc_tokens(), EvalOptions(max_length=96).doc_tokens()
        (128, 96)
        """
        if self.max_length is not None:
            return self.max_length
        if config is None:
            from solution.embedder.model import EmbedderConfig

            config = EmbedderConfig()
        return config.max_length


def torch_encoder(model, tokenizer, max_length: int, opts: EvalOptions):
    """A cached ``texts -> unit vectors`` function over a BiEncoder (cache: texts repeat across tasks)."""
    from solution.embedder.model import encode_texts
    from solution.precision import resolve_precision

    precision = resolve_precision(opts.precision, opts.device)
    cache: dict[str, np.ndarray] = {}

    def encode(texts: list[str]) -> np.ndarray:
        new = sorted({t for t in texts if t not in cache})
        if new:
            vecs = encode_texts(model, tokenizer, new, max_length, opts.batch_size, opts.device, precision)
            cache.update(zip(new, vecs))
        return np.stack([cache[t] for t in texts]) if texts else np.zeros((0, 1), dtype=np.float32)

    return encode


def heldout_patents(opts: EvalOptions, run_dir: Path | None):
    from inference.retrieval.corpus import read_patents
    from solution.embedder.split import split_patents

    patents = read_patents(opts.corpus)
    split = None
    if run_dir is not None and (run_dir / "split.json").exists():
        split = json.loads((run_dir / "split.json").read_text())
    if split is None:
        split = split_patents([p.patent_id for p in patents], opts.heldout_fraction, opts.seed)
    held = set(split["heldout"])
    trained = set(split.get("trained", split["train"]))
    return patents, [p for p in patents if p.patent_id in held and p.patent_id not in trained]


def query_patents(heldout: list, opts: EvalOptions) -> list:
    """The held-out patents whose title and synthetic queries are searched for (``opts.max_patents``)."""
    return heldout[: opts.max_patents] if opts.max_patents else heldout


def searched_collection(patents, heldout, opts: EvalOptions) -> list:
    """The documents searched: the scored held-out patents first (query ``i`` wants document ``i``),
    then ``opts.distractors`` other patents of the corpus (a seeded sample in file order; -1 = all)."""
    import random

    scored = {p.patent_id for p in heldout}
    others = [p for p in patents if p.patent_id not in scored]
    if 0 <= opts.distractors < len(others):
        keep = sorted(random.Random(opts.seed).sample(range(len(others)), opts.distractors))
        others = [others[i] for i in keep]
    return list(heldout) + others


def known_item_qrels(docs: list[str], n_queries: int) -> list[dict[int, float]]:
    """Query ``i`` wants document ``i`` and any document with the same text (corpora hold duplicates)."""
    same: dict[str, list[int]] = {}
    for j, d in enumerate(docs):
        same.setdefault(d.strip().lower(), []).append(j)
    return [dict.fromkeys(same[docs[i].strip().lower()], 1.0) for i in range(n_queries)]


def build_tasks(patents, queried, opts: EvalOptions, generator: str = "offline", doc_view: str = "title+abstract",
                typo_rate: float = 0.15):
    from solution.embedder.evaluators.ir import RetrievalTask
    from solution.embedder.queries import ROLES, make_generator

    collection = searched_collection(patents, queried, opts)
    abstracts = [p.abstract for p in collection]
    tasks = [RetrievalTask("title2abstract", [p.title for p in queried], abstracts,
                           known_item_qrels(abstracts, len(queried)))]
    roles = ROLES if opts.query_roles is None else opts.query_roles
    if not roles:
        return tasks
    gen = make_generator(generator, patents, seed=opts.seed, subclass_titles=opts.cpc_titles, typo_rate=typo_rate)
    queries = gen.generate(queried, roles)
    docs = [p.view(doc_view) for p in collection]
    qrels = known_item_qrels(docs, len(queried))
    for role in roles:
        tasks.append(RetrievalTask(f"queries:{role}", [q.text for q in queries if q.role == role], docs, qrels))
    return tasks


def label_metrics(encode_docs, heldout, doc_view: str, seed: int) -> dict[str, float]:
    """Macro-F1 and V-measure of the held-out patents' embeddings against their main CPC subclass."""
    from solution.embedder.evaluators.classification import classification_macro_f1
    from solution.embedder.evaluators.clustering import clustering_v_measure

    labels = [p.subclasses[0] if p.subclasses else "none" for p in heldout]
    emb = encode_docs([p.view(doc_view) for p in heldout])
    return {"classification_macro_f1": classification_macro_f1(emb, labels, seed=seed),
            "clustering_v_measure": clustering_v_measure(emb, labels, seed=seed)}


def evaluate_systems(systems: dict, patents, heldout, opts: EvalOptions, hybrid_of: str | None, run_cfg: dict) -> dict:
    """All metrics for every dense system (name -> (query encode, doc encode)), plus BM25 and hybrids."""
    from solution.embedder.evaluators.ir import evaluate_task
    from solution.embedder.evaluators.phrases import load_phrase_groups, phrase_ndcg
    from solution.embedder.evaluators.tfidf import tfidf_vectors

    doc_view = run_cfg.get("doc_view", "title+abstract")
    tasks = build_tasks(patents, query_patents(heldout, opts), opts, run_cfg.get("generator", "offline"), doc_view,
                        run_cfg.get("typo_rate", 0.15))
    results: dict[str, dict] = {}
    for task in tasks:
        t0 = time.time()
        for system, metrics in evaluate_task(task, systems, bm25=True, hybrid_of=hybrid_of, alpha=opts.alpha).items():
            results.setdefault(system, {})[task.name] = metrics
        log.info("%s: %.1f s", task.name, time.time() - t0)
    for system in results:  # mean over the synthetic-query roles
        roles = [v for k, v in results[system].items() if k.startswith("queries:")]
        results[system]["queries"] = {m: float(np.mean([r[m] for r in roles])) for m in roles[0]} if roles else {}
    groups = (load_phrase_groups(opts.phrases, opts.max_phrase_groups, opts.seed)
              if opts.phrases and Path(opts.phrases).exists() else [])  # "": no phrase task
    for system, (_, enc_d) in systems.items():
        results[system].update(label_metrics(enc_d, heldout, doc_view, opts.seed))
        if groups:
            results[system]["phrase_ndcg@10"] = phrase_ndcg(groups, systems[system][0])
    results["tfidf"] = label_metrics(tfidf_vectors, heldout, doc_view, opts.seed)  # the lexical baseline
    return results


def format_table(results: dict) -> str:
    """Markdown table: one row per system."""
    extra = [("macro-F1", "classification_macro_f1"), ("V-measure", "clustering_v_measure"),
             ("phrase ndcg@10", "phrase_ndcg@10")]
    head = ["system"] + [c[0] for c in COLUMNS] + [c[0] for c in extra]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for system, r in results.items():
        cells = [system]
        for _, task, metric in COLUMNS:
            v = r.get(task, {}).get(metric)
            cells.append(f"{v:.4f}" if v is not None else "-")
        for _, key in extra:
            cells.append(f"{r[key]:.4f}" if key in r else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_roles(results: dict) -> str:
    from solution.embedder.queries import ROLES

    roles = [r for r in ROLES if any(f"queries:{r}" in tasks for tasks in results.values())]
    if not roles:
        return ""
    head = ["system"] + [f"{r} ndcg@10" for r in roles]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for system, r in results.items():
        lines.append("| " + " | ".join([system] + [f"{r.get(f'queries:{role}', {}).get('ndcg@10', float('nan')):.4f}"
                                                    for role in roles]) + " |")
    return "\n".join(lines)


def run_evaluation(run: str | None, model: str | None, opts: EvalOptions, zero_shot: bool = True) -> dict:
    """Evaluate a run (with the zero-shot backbone as a baseline) and/or a plain model; returns the report."""
    from solution.embedder.model import EmbedderConfig, build_encoder, load_run_encoder

    run_dir = Path(run) if run else None
    patents, heldout = heldout_patents(opts, run_dir)
    if len(heldout) < 10:
        raise SystemExit(f"only {len(heldout)} held-out patents to evaluate on; use a larger corpus or fraction")
    systems: dict = {}
    run_cfg: dict = {}
    hybrid_of = None
    backbone = model
    doc_tokens = opts.doc_tokens()
    if run_dir is not None:
        enc, tok, ecfg = load_run_encoder(run_dir, opts.device)
        run_cfg = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").exists() else {}
        name = f"{run_cfg.get('recipe', 'run')}:{run_dir.name}"
        doc_tokens = opts.doc_tokens(ecfg)
        systems[name] = (torch_encoder(enc, tok, ecfg.query_max_length, opts), torch_encoder(enc, tok, doc_tokens, opts))
        hybrid_of = name
        backbone = backbone or ecfg.backbone
    if backbone and (zero_shot or run_dir is None):
        enc, tok = build_encoder(EmbedderConfig(backbone=backbone, lora=False))
        enc.to(opts.device).eval()
        systems["zero-shot"] = (torch_encoder(enc, tok, opts.query_max_length, opts),
                                torch_encoder(enc, tok, doc_tokens, opts))
        hybrid_of = hybrid_of or "zero-shot"
    t0 = time.time()
    results = evaluate_systems(systems, patents, heldout, opts, hybrid_of, run_cfg)
    queried = query_patents(heldout, opts)
    report = {"run": str(run_dir) if run_dir else None, "backbone": backbone, "corpus": opts.corpus,
              "n_heldout": len(heldout), "n_heldout_scored": len(queried),
              "n_searched": len(searched_collection(patents, queried, opts)), "doc_max_length": doc_tokens,
              "options": opts.__dict__, "results": results,
              "eval_s": time.time() - t0, "table": format_table(results), "roles_table": format_roles(results)}
    return report


def parse_roles(text: str) -> tuple[str, ...] | None:
    """``--roles``: "all" -> None (every role), "none" -> (), else the listed roles, checked.

    >>> parse_roles("all"), parse_roles("none"), parse_roles("keyword, question")
    (None, (), ('keyword', 'question'))
    """
    from solution.embedder.queries import ROLES

    if text.strip() in ("all", ""):
        return None
    if text.strip() == "none":
        return ()
    roles = tuple(r.strip() for r in text.split(",") if r.strip())
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise SystemExit(f"--roles: unknown role(s) {unknown}; roles are {', '.join(ROLES)}, or all / none")
    return roles


def main(argv: list[str]) -> dict:
    import argparse

    from inference.io import DataError, atomic_write_text
    from solution.runtime import tune_malloc

    tune_malloc()
    p = argparse.ArgumentParser(prog="python -m solution.evaluate embedder", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="embedder run folder (runs/NAME)")
    p.add_argument("--model", help="a backbone to evaluate zero-shot (default with --run: the run's backbone)")
    p.add_argument("--no-zero-shot", action="store_true", help="with --run: skip the zero-shot baseline")
    p.add_argument("--corpus", default=EvalOptions.corpus, help="patent CSV")
    p.add_argument("--phrases", default=EvalOptions.phrases, help="USPPPM CSV with scores (phrase retrieval)")
    p.add_argument("--max-patents", type=int, default=EvalOptions.max_patents, help="held-out patents scored (0 = all)")
    p.add_argument("--distractors", type=int, default=EvalOptions.distractors,
                   help="other corpus patents searched alongside them (-1 = all, 0 = none)")
    p.add_argument("--max-phrase-groups", type=int, default=EvalOptions.max_phrase_groups)
    p.add_argument("--max-length", type=int, default=EvalOptions.max_length,
                   help="document tokens (default: the run's own max_length, which its export indexes with)")
    p.add_argument("--roles", default="all",
                   help="synthetic-query roles scored, comma-separated (default all; none: title -> abstract, "
                        "labels and phrases only, which skips encoding the corpus a second time)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", help="JSON report path (default RUN/eval.json, or eval-zero-shot.json)")
    args = p.parse_args(argv)
    if not args.run and not args.model:
        p.error("give --run runs/NAME and/or --model ID_OR_PATH")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    opts = EvalOptions(corpus=args.corpus, phrases=args.phrases, max_patents=args.max_patents,
                       distractors=args.distractors, max_phrase_groups=args.max_phrase_groups,
                       max_length=args.max_length, query_roles=parse_roles(args.roles), device=args.device)
    try:
        report = run_evaluation(args.run, args.model, opts, zero_shot=not args.no_zero_shot)
    except DataError as err:
        raise SystemExit(f"data error: {err}") from None
    out = Path(args.out) if args.out else (Path(args.run) / "eval.json" if args.run else Path("eval-zero-shot.json"))
    atomic_write_text(out, json.dumps(report, indent=2, default=float) + "\n")
    if args.run and out == Path(args.run) / "eval.json":
        from solution.report import write_report

        write_report(args.run)  # now with the recall@k curves and per-role bars of this evaluation
    print(report["table"])
    if report["roles_table"]:
        print()
        print(report["roles_table"])
    print(f"\n{report['n_heldout_scored']} held-out patents as queries, {report['n_searched']} patents searched; "
          f"classification and clustering on all {report['n_heldout']} held-out patents; documents cut at "
          f"{report['doc_max_length']} tokens; report: {out}")
    return report
