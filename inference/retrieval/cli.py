"""``python -m inference index`` and ``python -m inference search``.

    python -m inference index  --model models/NAME --corpus data/patents/a61_patents.csv --out indexes/NAME
    python -m inference search --index indexes/NAME --query "drug-coated balloon catheter" -k 10 [--hybrid]

``add_index_parser`` / ``add_search_parser`` register the subcommands on ``python -m inference``;
``python -m inference.retrieval`` runs the same two without it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from inference.backend.runtime import add_runtime_argument
from inference.backend.session import DEVICE_HELP, DEVICES
from inference.backend.variants import VARIANTS
from inference.retrieval.bm25 import DEFAULT_PAIR_WEIGHT
from inference.retrieval.fusion import DEFAULT_ALPHA
from inference.retrieval.vector_search import ANN_KINDS, ANN_MIN_DOCS
from inference.validate import non_negative_float, positive_int, unit_float


def run_index(args) -> None:
    from inference.io import DataError
    from inference.retrieval.index import build_index

    try:
        info = build_index(args.model, args.corpus, args.out, dtype=args.dtype, chunk_size=args.chunk_size,
                           variant=args.variant, bm25=not args.no_bm25, progress=not args.quiet, device=args.device,
                           bm25_stemmer=None if args.bm25_stemmer == "none" else args.bm25_stemmer,
                           bm25_pair_weight=args.bm25_pair_weight, ann=args.ann, runtime=args.runtime)
    except DataError as err:
        raise SystemExit(f"data error: {err}") from None
    bm25 = f"yes (stemmer {info['bm25_stemmer']}, word-pair weight {info['bm25_pair_weight']})" if info["bm25"] else "no"
    print(f"index {args.out}: {info['count']} patents, dim {info['dim']} {info['dtype']}, bm25 {bm25}, "
          f"model {info['model']} ({info['model_sha256'][:12]}...), providers {info.get('providers', '-')}")


def read_text_file(path: str) -> str:
    """A UTF-8 text file, or an error naming it (and the line of a bad byte)."""
    from inference.io import decode_utf8

    try:
        return decode_utf8(path, Path(path).read_bytes())
    except OSError as err:
        raise SystemExit(f"error: {path}: cannot be read ({err.strerror or err})") from None


def run_search(args) -> None:
    from inference.retrieval.ranker import PatentRanker

    ranker = PatentRanker.load(args.index, model=args.model, device=args.device, ann=False if args.exact else None,
                               verify=args.verify)
    hybrid = args.hybrid or False
    queries = list(args.query or [])
    if args.queries:
        queries += [line.strip() for line in read_text_file(args.queries).splitlines() if line.strip()]
    if not queries:
        raise SystemExit("give --query TEXT (repeatable) or --queries FILE")
    results = ranker.search_batch(queries, args.k, hybrid=hybrid, alpha=args.alpha)
    if args.json:
        print(json.dumps([{"query": q, "hits": [{"patent_id": i, "score": s, "title": t} for i, s, t in hits]}
                          for q, hits in zip(queries, results)], indent=2, ensure_ascii=False, allow_nan=False))
        return
    for q, hits in zip(queries, results):
        print(f"query: {q}")
        for rank, (pid, score, title) in enumerate(hits, 1):
            print(f"{rank:3d}. {pid}  {score:.4f}  {title}")


def _errors(func):
    def run(args):
        from inference.backend.manifest import ModelFolderError
        from inference.backend.openvino_runner import RuntimeMissingError
        from inference.backend.session import DeviceError
        from inference.retrieval.index import IndexMismatchError

        try:
            func(args)
        except (IndexMismatchError, ModelFolderError, DeviceError, RuntimeMissingError, ValueError, ImportError) as err:
            raise SystemExit(f"error: {err}") from None

    return run


def add_index_parser(subparsers) -> None:
    p = subparsers.add_parser("index", help="embed a patent corpus into a searchable index",
                              description="Embed a patent CSV with an exported embedder; chunked and resumable.")
    p.add_argument("--model", required=True, help="exported embedder folder (python -m export ...)")
    p.add_argument("--corpus", required=True, help="patent CSV: patent_id,patent_title,patent_abstract[,cpc_subclasses]")
    p.add_argument("--out", required=True, help="index folder, e.g. indexes/NAME")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16"], help="embedding storage")
    p.add_argument("--variant", default="auto", choices=VARIANTS,
                   help="graph to embed with: auto = on CPU the fastest measured here (int8 where the export shipped it, "
                        "or OpenVINO bf16), fp16 on CUDA; fp32 = exact; bf16 = the fp32 graph on OpenVINO (default: auto)")
    add_runtime_argument(p)
    p.add_argument("--chunk-size", type=positive_int, default=256, help="patents per resumable chunk")
    p.add_argument("--no-bm25", action="store_true", help="skip the BM25 state (no hybrid search)")
    p.add_argument("--bm25-stemmer", default="english", choices=["english", "none"],
                   help="BM25 tokens: Snowball English stems (default; needs PyStemmer) or none (unstemmed words)")
    p.add_argument("--bm25-pair-weight", type=non_negative_float, default=DEFAULT_PAIR_WEIGHT,
                   help=f"what a query's pairs of neighbouring words count in BM25 against its words (default "
                        f"{DEFAULT_PAIR_WEIGHT}; 0 = words only, the pairs are then not indexed)")
    p.add_argument("--ann", default="auto", choices=ANN_KINDS,
                   help=f"approximate-search structure (needs faiss-cpu): auto = none below {ANN_MIN_DOCS:,} patents, "
                        "IVF from there (quick to build); hnsw: the lowest latency, but far slower to build; "
                        "none = exact search only (docs/decisions/ann-ivf-default.md)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--device", default="auto", choices=DEVICES, help=DEVICE_HELP)
    p.set_defaults(func=_errors(run_index))


def add_search_parser(subparsers) -> None:
    p = subparsers.add_parser("search", help="search an index with free-text queries",
                              description="Cosine top-k over an index: exact, or through the index's ANN structure "
                                          "where one was built (--exact to skip it); --hybrid fuses in BM25.")
    p.add_argument("--index", required=True, help="index folder")
    p.add_argument("--query", action="append", help="query text (repeatable)")
    p.add_argument("--queries", help="file with one query per line (batch search)")
    p.add_argument("-k", type=positive_int, default=10, help="results per query")
    p.add_argument("--hybrid", nargs="?", const="rrf", choices=["rrf", "convex"],
                   help="fuse BM25 and dense scores (default rrf, k=60)")
    p.add_argument("--alpha", type=unit_float, default=DEFAULT_ALPHA, help="convex fusion: weight of the dense scores")
    p.add_argument("--model", help="model folder (default: the one the index was built with; others are refused)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--exact", action="store_true", help="exact search even where the index has an ANN structure")
    p.add_argument("--verify", action="store_true",
                   help="hash the embeddings whole before searching (by default a sample of them is hash-checked)")
    p.add_argument("--device", default="auto", choices=DEVICES, help=DEVICE_HELP)
    p.set_defaults(func=_errors(run_search))


def add_parser(subparsers) -> None:
    """Both subcommands (for a ``SUBCOMMANDS``-style registry that calls ``add_parser``)."""
    add_index_parser(subparsers)
    add_search_parser(subparsers)


def main(argv: list[str] | None = None) -> None:
    import argparse
    import logging

    parser = argparse.ArgumentParser(prog="python -m inference.retrieval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_parser(sub)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args.func(args)
