"""A patent index on disk: embeddings (memory-mapped .npy), ids, titles, BM25 state and a manifest.

    indexes/NAME/
        index.json         model folder, graph sha256, corpus sha256, dtype, dim, count, progress
        embeddings.npy     (n, dim) float32 or float16, unit rows, opened with mmap_mode="r"
        ids.json titles.json
        bm25/              bm25s state and its tokenizer.json (stemmer), when bm25s is installed
        ann.faiss          FAISS HNSW or IVF structure for approximate search (large corpora, see
                           inference/retrieval/vector_search.py), when built

Building is chunked and resumable: after each chunk the progress is saved, and a rerun with the same
model and corpus continues where it stopped. An index is tied to the graph it was built with (sha256):
searching it with another model, or resuming it with one, is refused. A finished index records the
sha256 of its embeddings, ids, titles and BM25 files; loading checks them and the shape (a flipped
byte, a truncated file or a row-count mismatch is refused), and a build refuses non-finite embeddings.

Example:
    >>> build_index("models/minilm", "data/patents/a61_patents.csv", "indexes/minilm")   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from inference.backend.manifest import sha256_file
from inference.io import atomic_write_text
from inference.retrieval.bm25 import DEFAULT_PAIR_WEIGHT
from inference.retrieval.vector_search import ANN_FILE, build_ann, choose_ann, faiss_module, save_ann
from inference.validate import check_positive

log = logging.getLogger(__name__)

INDEX_FILE = "index.json"
INDEX_VERSION = 1
INDEX_DTYPES = ("float32", "float16")
INDEX_DATA = ("embeddings.npy", "ids.json", "titles.json")  # hashed into index.json when the build completes


class IndexMismatchError(RuntimeError):
    """An index folder is missing, incomplete, or does not belong to the model or corpus at hand."""


def _write_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def read_index_info(folder: str | os.PathLike) -> dict:
    path = Path(folder) / INDEX_FILE
    if not path.is_file():
        raise IndexMismatchError(f"{folder}: no {INDEX_FILE}; not an index folder (build one with `python -m inference index`)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise IndexMismatchError(f"{path}: not readable as JSON ({str(err)[:200]}); rebuild the index") from None
    if not isinstance(info, dict):
        raise IndexMismatchError(f"{path}: not an index description (a JSON object); rebuild the index")
    if info.get("format_version") != INDEX_VERSION:
        raise IndexMismatchError(f"{path}: format_version {info.get('format_version')!r}, expected {INDEX_VERSION}; rebuild it")
    for key, (kinds, what) in INFO_FIELDS.items():
        value = info.get(key)
        if not _field_ok(value, kinds):
            raise IndexMismatchError(f"{path}: {key} is {str(value)[:80]!r}, expected {what}; rebuild the index")
    if info["dtype"] not in INDEX_DTYPES:
        raise IndexMismatchError(f"{path}: dtype is {str(info['dtype'])[:80]!r}, expected one of {', '.join(INDEX_DTYPES)}; "
                                 "rebuild the index")
    if info["complete"] and not isinstance(info.get("files"), dict):
        raise IndexMismatchError(f"{path}: a complete index without its files' sha256 ('files'); rebuild the index")
    if info.get("ann") and not (isinstance(info["ann"], dict) and isinstance(info["ann"].get("kind"), str)
                                and isinstance(info["ann"].get("params", {}), dict)):
        raise IndexMismatchError(f"{path}: ann is {str(info['ann'])[:80]!r}, expected its kind and params; rebuild the index")
    return info


def _field_ok(value, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # a bool is an int to isinstance: only a bool field takes one
        return bool in kinds
    return isinstance(value, kinds) and not (isinstance(value, int) and value < 0)


# the fields every load reads, with their types (a hand-edited index.json is refused here, not by a TypeError later)
INFO_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "count": ((int,), "a count of patents"), "dim": ((int,), "the embedding size"),
    "dtype": ((str,), "float32 or float16"), "model": ((str,), "the model's folder"),
    "model_sha256": ((str,), "the graph's sha256"), "variant": ((str,), "the model variant"),
    "chunks_done": ((int,), "a count of chunks"), "chunk_size": ((int,), "a chunk size"),
    "complete": ((bool,), "true or false"), "bm25": ((bool,), "true or false"),
    "corpus": ((str,), "the corpus path"), "corpus_sha256": ((str,), "the corpus's sha256"),
}


SAMPLED = ("embeddings.npy",)  # big files checked by a sample on every load (in full with verify)
SAMPLE_BLOCKS, SAMPLE_BYTES = 64, 1 << 16


def sampled_sha256(path: Path) -> str:
    """sha256 of a file's size and of 64 blocks of 64 KiB spread evenly over it (the first and last
    included): reads 4 MiB whatever the size, so opening a 1M-vector index does not read 3 GB twice."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        for k in range(SAMPLE_BLOCKS):
            f.seek(max(0, (size - SAMPLE_BYTES) * k // (SAMPLE_BLOCKS - 1)))
            digest.update(f.read(SAMPLE_BYTES))
    return digest.hexdigest()


def check_files(folder: Path, info: dict, names, verify: bool = True) -> None:
    """Refuse unless each of ``names`` has the sha256 index.json recorded. ``verify=False``: the big files with a sampled digest
    (:func:`sampled_sha256`) are checked by it instead of hashed whole."""
    recorded = info.get("files") if isinstance(info.get("files"), dict) else {}
    sampled = info.get("sampled") if isinstance(info.get("sampled"), dict) else {}
    for name in names:
        if not verify and name in sampled:
            if not (folder / name).is_file() or sampled_sha256(folder / name) != sampled[name]:
                raise IndexMismatchError(f"{folder / name}: missing, or its sha256 does not match {INDEX_FILE} "
                                         "(checked on a sample; modified, corrupted or partly copied); rebuild the "
                                         "index or copy it again")
            continue
        if not (folder / name).is_file() or sha256_file(folder / name) != recorded.get(name):
            raise IndexMismatchError(f"{folder / name}: missing, or its sha256 does not match {INDEX_FILE} "
                                     "(modified, corrupted or partly copied); rebuild the index or copy it again")


def bm25_files(folder: Path) -> list[str]:
    """The BM25 state's files, as index.json names them (``bm25/...``)."""
    return sorted(f"bm25/{p.name}" for p in (folder / "bm25").iterdir() if p.is_file())


def load_index_files(folder: Path, info: dict, verify: bool = False) -> tuple[np.ndarray, list, list]:
    """(embeddings memory-mapped, ids, titles), refused unless they are the files the build wrote: the
    sha256 recorded in index.json first (before anything is parsed; the embeddings by a sample unless
    ``verify``), then shape and row counts, then (with ``verify``) every vector finite."""
    check_files(folder, info, INDEX_DATA, verify)
    try:
        embeddings = np.load(folder / "embeddings.npy", mmap_mode="r")
        ids = json.loads((folder / "ids.json").read_text(encoding="utf-8"))
        titles = json.loads((folder / "titles.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, EOFError) as err:  # EOFError: numpy's word for an empty .npy
        raise IndexMismatchError(f"{folder}: unreadable index files ({type(err).__name__}: {err}); rebuild the "
                                 "index") from None
    for name, values in (("ids.json", ids), ("titles.json", titles)):
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise IndexMismatchError(f"{folder / name}: not a list of strings; rebuild the index")
    if embeddings.dtype != np.dtype(info["dtype"]):
        raise IndexMismatchError(f"{folder / 'embeddings.npy'}: {embeddings.dtype} values, {INDEX_FILE} says "
                                 f"{info['dtype']}; rebuild the index")
    expected = (info["count"], info["dim"])
    if embeddings.shape != expected or len(ids) != info["count"] or len(titles) != info["count"]:
        raise IndexMismatchError(f"{folder}: embeddings of shape {embeddings.shape}, {len(ids)} ids, {len(titles)} "
                                 f"titles; {INDEX_FILE} says {info['count']} x {info['dim']}; rebuild the index")
    if verify:  # else each row is checked where a search scans it (PatentRanker._finite_rows)
        check_finite(folder, embeddings, ids)
    return embeddings, ids, titles


def check_finite(folder: Path, embeddings: np.ndarray, ids: list, rows_per_pass: int = 65536) -> None:
    """Refuse embeddings holding NaN or inf (a search would rank them arbitrarily and JSON cannot carry
    them); read in slices, so memory stays bounded by one slice of the memory map."""
    for start in range(0, len(embeddings), rows_per_pass):
        block = np.asarray(embeddings[start:start + rows_per_pass])
        if not np.isfinite(block).all():
            bad = start + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
            raise IndexMismatchError(f"{folder / 'embeddings.npy'}: row {bad} (patent {ids[bad]!r}) is not finite; "
                                     "rebuild the index")


def index_model_folder(folder: Path, info: dict) -> Path:
    """The model an index was built with: beside it as it was at build time (relative), else where it was."""
    relative = info.get("model_relative")
    candidates = ([folder / relative] if isinstance(relative, str) else []) + [Path(str(info.get("model")))]
    for candidate in candidates:
        if (candidate / "manifest.json").is_file():
            return candidate
    raise IndexMismatchError(f"{folder}: its model is at neither {' nor '.join(map(str, candidates))}; pass the "
                             "model folder it was built with (--model)")


def check_model(info: dict, model, folder) -> None:
    """Refuse an index that was built with another graph than ``model``'s."""
    if info["model_sha256"] != model.graph_sha256:
        raise IndexMismatchError(
            f"{folder}: built with model {info['model']} ({info['variant']}, sha256 {info['model_sha256'][:12]}...), "
            f"but the model given is {model.folder} ({model.variant}, sha256 {model.graph_sha256[:12]}...); "
            "embeddings of different models are not comparable: rebuild the index with this model, or search "
            "with the model it was built with")


def build_index(model_dir: str | os.PathLike, corpus: str | os.PathLike, out: str | os.PathLike,
                dtype: str = "float32", chunk_size: int = 256, variant: str = "auto", bm25: bool = True,
                progress: bool = True, batch_size: int = 32, device: str = "cpu",
                bm25_stemmer: str | None = "english", bm25_pair_weight: float = DEFAULT_PAIR_WEIGHT,
                ann: str = "auto", runtime: str = "auto") -> dict:
    """Embed every patent of ``corpus`` into ``out``; resumes an unfinished build. Returns index.json.
    ``variant`` / ``runtime``: as :meth:`EmbedderModel.load` ("auto": the fastest measured here; a resumed
    build keeps the variant it started with).
    ``bm25_stemmer``: "english" (Snowball, the default) or None (unstemmed BM25); ``bm25_pair_weight``:
    what a query's neighbouring word pairs count against its words (0: words only). ``ann``: "auto" (an
    ANN structure for large corpora when FAISS is installed), "hnsw", "ivf" or "none"."""
    from inference.retrieval.corpus import read_patents
    from inference.retrieval.encoder import EmbedderModel

    if bm25:
        bm25 = _bm25_available(bm25_stemmer)  # before the embedding work, not after it
    check_positive("chunk_size", chunk_size)
    check_positive("batch_size", batch_size)
    if dtype not in INDEX_DTYPES:
        raise ValueError(f"dtype {dtype!r}: float32 or float16")
    out = Path(out)
    if variant == "auto" and (out / INDEX_FILE).exists():
        variant = read_index_info(out)["variant"]  # a resumed build's vectors come from the graph it started with
    model = EmbedderModel.load(model_dir, variant, device=device, runtime=runtime)
    patents = read_patents(corpus)
    ann_kind = _ann_available(ann, len(patents))
    corpus_sha = sha256_file(corpus)
    model_path = model.folder.resolve()
    info = {"format_version": INDEX_VERSION, "model": str(model_path),
            # how to find the model from the index: an index and its model moved together still search
            "model_relative": os.path.relpath(model_path, Path(out).resolve()), "variant": model.variant,
            "runtime": model.runtime,
            "model_sha256": model.graph_sha256, "corpus": str(corpus), "corpus_sha256": corpus_sha,
            "doc_view": model.doc_view, "dim": model.dim, "dtype": dtype, "count": len(patents),
            "chunk_size": chunk_size, "chunks_done": 0, "complete": False, "bm25": False,
            "bm25_stemmer": bm25_stemmer if bm25 else None, "bm25_pair_weight": bm25_pair_weight if bm25 else None}
    emb_path = out / "embeddings.npy"
    if (out / INDEX_FILE).exists():
        old = read_index_info(out)
        check_model(old, model, out)
        if old["corpus_sha256"] != corpus_sha or old["dtype"] != dtype or old["chunk_size"] != chunk_size:
            raise IndexMismatchError(f"{out}: holds an index of another corpus or layout ({old['corpus']}, {old['dtype']}, "
                              f"chunk {old['chunk_size']}); remove the folder or choose another --out")
        if old["complete"]:
            log.info("%s is complete; nothing to do", out)
            return old
        info["chunks_done"] = old["chunks_done"] if emb_path.is_file() else 0
    else:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise IndexMismatchError(f"{out}: exists and is not an index folder (no {INDEX_FILE}); an index is built "
                                     "only into a new or empty folder: choose another --out")
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / INDEX_FILE, info)  # first: a build killed after it is this index's to resume
    if info["chunks_done"]:
        try:
            emb = np.load(emb_path, mmap_mode="r+")
        except (OSError, ValueError, EOFError) as err:
            raise IndexMismatchError(f"{emb_path}: the unfinished build's embeddings are unreadable "
                                     f"({type(err).__name__}: {err}); remove {out} and build again") from None
    else:  # a new build, or one killed before its first chunk: its files from the start
        _write_json(out / "ids.json", [p.patent_id for p in patents])
        _write_json(out / "titles.json", [p.title for p in patents])
        emb = np.lib.format.open_memmap(emb_path, mode="w+", dtype=dtype, shape=(len(patents), model.dim))
    n_chunks = (len(patents) + chunk_size - 1) // chunk_size
    t0 = time.time()
    bar = _progress(range(info["chunks_done"], n_chunks), progress, n_chunks, info["chunks_done"])
    for c in bar:
        rows = patents[c * chunk_size:(c + 1) * chunk_size]
        vectors = model.encode_docs([p.view(model.doc_view) for p in rows], batch_size)
        if not np.isfinite(vectors).all():
            bad = int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])
            raise IndexMismatchError(f"{out}: the model gave a non-finite embedding for patent {rows[bad].patent_id!r}; "
                                     "the model folder is broken: re-export it")
        emb[c * chunk_size: c * chunk_size + len(rows)] = vectors
        emb.flush()  # data first, then the progress that claims it
        info["chunks_done"] = c + 1
        _write_json(out / INDEX_FILE, info)
    del emb
    hashed = list(INDEX_DATA)
    if bm25:
        from inference.retrieval.bm25 import Bm25Index

        Bm25Index.build([p.view("title+abstract") for p in patents], stemmer=bm25_stemmer,
                        pair_weight=bm25_pair_weight).save(out / "bm25")
        info["bm25"] = True
        hashed += bm25_files(out)
    if ann_kind != "none":
        info["ann"] = _build_ann(out, ann_kind, progress)
        hashed.append(ANN_FILE)
    info.update(complete=True, build_s=round(time.time() - t0, 2), providers=model.providers,
                files={name: sha256_file(out / name) for name in hashed},
                sampled={name: sampled_sha256(out / name) for name in SAMPLED})
    _write_json(out / INDEX_FILE, info)
    return info


def _bm25_available(stemmer: str | None) -> bool:
    """True when BM25 can be built with ``stemmer``; False (warned) without bm25s; a missing stemmer is
    an error, because the user asked for stemmed BM25 (the default) and unstemmed is one flag away."""
    from inference.retrieval.bm25 import make_tokenizer

    try:
        import bm25s  # noqa: F401
    except ImportError:
        log.warning("bm25s is not installed: the index gets no BM25 state (no --hybrid search); "
                    "pip install bm25s PyStemmer")
        return False
    make_tokenizer(stemmer)
    return True


def _ann_available(ann: str, n_docs: int) -> str:
    """The ANN kind to build: an explicit hnsw/ivf without FAISS is an error (before any embedding);
    ``auto`` without FAISS searches exactly, with a warning when the corpus is large enough to want one."""
    kind = choose_ann(ann, n_docs)
    if kind != "none" and faiss_module() is None:
        if ann != "auto":
            raise ImportError(f"--ann {ann} needs FAISS: pip install faiss-cpu (or --ann none for exact search)")
        log.warning("%d patents: approximate search would be faster, but FAISS is not installed "
                    "(pip install faiss-cpu); the index searches exactly", n_docs)
        return "none"
    return kind


def _build_ann(out: Path, kind: str, progress: bool) -> dict:
    start = time.time()
    embeddings = np.load(out / "embeddings.npy", mmap_mode="r")
    log.info("building the %s structure over %d vectors", kind, len(embeddings))
    index, params = build_ann(embeddings, kind, progress=lambda blocks: _progress(blocks, progress, len(blocks), 0,
                                                                                  f"{kind} blocks"))
    save_ann(index, out / ANN_FILE)
    return {"kind": kind, "params": params, "build_s": round(time.time() - start, 2)}


def _progress(it, enabled: bool, total: int, initial: int, desc: str = "index chunks"):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, total=total, initial=initial, desc=desc, dynamic_ncols=True)
