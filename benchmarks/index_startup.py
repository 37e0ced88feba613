"""Opening an index as its corpus grows: what a load reads, with the page cache cold and warm.

    python -m benchmarks.index_startup                       # 100k and 1M vectors of dim 384, float32
    python -m benchmarks.index_startup --rows 20000 --no-append   # a quick look

Builds a synthetic index folder per size (random unit vectors, ids, titles, index.json with the
hashes a real build records) and times ``load_index_files``, the part of ``PatentRanker.load`` that
grows with the corpus, three ways: the cheap load (sampled hash, shapes), that load plus a finiteness
scan of every vector (what each load did before the scan moved to search time), and ``verify=True``
(every byte hashed, every vector checked). "Cold" drops the files from the page cache first
(``posix_fadvise DONTNEED``), as after a reboot or on a fresh container. It also measures the hybrid
path's memory: peak traced allocation of one batch of 8 queries' dense scores, block-wise
(``exact_scores``) against converting the whole memory map to float32 first.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from benchmarks._results import append_results, markdown_table
from inference.backend.manifest import sha256_file
from inference.retrieval.index import INDEX_FILE, INDEX_VERSION, check_finite, load_index_files, sampled_sha256
from inference.retrieval.vector_search import exact_scores


def write_index(folder: Path, n: int, dim: int, dtype: str, seed: int = 0, block: int = 100_000) -> dict:
    """A complete index folder of ``n`` random unit vectors, described as a build describes it."""
    folder.mkdir(parents=True)
    emb = np.lib.format.open_memmap(folder / "embeddings.npy", mode="w+", dtype=dtype, shape=(n, dim))
    rng = np.random.default_rng(seed)
    for start in range(0, n, block):
        vectors = rng.standard_normal((min(block, n - start), dim), dtype=np.float32)
        emb[start:start + len(vectors)] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    emb.flush()
    del emb
    (folder / "ids.json").write_text(json.dumps([f"US{i:08d}" for i in range(n)]))
    (folder / "titles.json").write_text(json.dumps([f"title of patent {i}" for i in range(n)]))
    names = ("embeddings.npy", "ids.json", "titles.json")
    info = {"format_version": INDEX_VERSION, "count": n, "dim": dim, "dtype": dtype, "complete": True,
            "files": {name: sha256_file(folder / name) for name in names},
            "sampled": {"embeddings.npy": sampled_sha256(folder / "embeddings.npy")}}
    (folder / INDEX_FILE).write_text(json.dumps(info))
    return info


def drop_cache(folder: Path) -> None:
    for path in folder.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def time_load(folder: Path, info: dict, how: str, cold: bool) -> float:
    if cold:
        drop_cache(folder)
    start = time.perf_counter()
    embeddings, ids, _ = load_index_files(folder, info, verify=how == "verify")
    if how == "scan":
        check_finite(folder, embeddings, ids)
    return time.perf_counter() - start


def peak_mib(fn) -> float:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def hybrid_peaks(path: Path, dim: int) -> tuple[float, float]:
    """Peak MiB of 8 queries' dense scores against every vector: the whole map as float32, then block-wise."""
    queries = np.random.default_rng(1).standard_normal((8, dim), dtype=np.float32)
    emb = np.load(path, mmap_mode="r")
    return (peak_mib(lambda: queries @ np.asarray(emb, dtype=np.float32).T),
            peak_mib(lambda: exact_scores(emb, queries)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    p.add_argument("--workdir", default=None, help="where the index folders go (default: a temporary folder)")
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args()
    hows = {"cheap": "sampled hash + shapes (every load now)", "scan": "+ finiteness scan (every load before)",
            "verify": "verify=True: full sha256 + scan"}
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        for n in args.rows:
            folder = Path(work) / f"idx-{n}"
            info = write_index(folder, n, args.dim, args.dtype)
            size_mib = (folder / "embeddings.npy").stat().st_size / 2**20
            times = {(how, cold): time_load(folder, info, how, cold) for how in hows for cold in (True, False)}
            whole, blocks = hybrid_peaks(folder / "embeddings.npy", args.dim)
            for how, label in hows.items():
                rows.append([f"{n:,}", f"{size_mib:.0f}", label, f"{times[how, True]:.3f}", f"{times[how, False]:.3f}",
                             f"{whole:.0f} / {blocks:.0f}" if how == "cheap" else ""])
                print(rows[-1], flush=True)
    table = markdown_table(["vectors", "embeddings MiB", "load", "cold s", "warm s",
                            "hybrid: 8 queries' dense scores, peak MiB (whole map as float32 / block-wise)"], rows)
    append_results("Index start-up as the corpus grows: the cheap load, the old per-load scan, --verify", table,
                   append=not args.no_append,
                   notes=f"synthetic unit vectors, dim {args.dim}, {args.dtype}; load_index_files alone (the model's "
                         "load does not grow with the corpus); cold = the files dropped from the page cache first")


if __name__ == "__main__":
    main()
