"""Scoring a pair file of any size in bounded memory (``inference score``, :meth:`PhraseScorer.score_csv`).

The multi layout scores each anchor+context group in one sequence, so a group's rows must be scored
together wherever they stand in the file. Three passes keep memory to one bucket of rows plus 12 bytes
a row (a hash of its id, its score):

1. **Split.** The file is read as a stream and every row checked (:func:`inference.io.check_pair_row`);
   each row goes to one of ``n`` temporary bucket files chosen by a hash of its anchor and context, so
   a bucket holds whole groups; its line and id go to a temporary id file, in file order.
2. **Score.** One bucket at a time is read back and scored. A group's scores depend on the group alone
   (its sibling orders are built from its own text: :func:`inference.phrase.multi.sibling_arrangement`),
   so they equal what scoring the whole file at once gives. Scores land in one array by row number.
3. **Write.** The ids are read back in file order and ``id,score`` written to a temporary file beside
   the output, renamed over it only when complete.

Example (the vendored Kaggle test file, in 3 buckets):
    >>> from inference.phrase.stream import split_pairs
    >>> split = split_pairs("data/uspppm/test.csv", Path(tempfile.mkdtemp()), n_buckets=3)
    >>> split.n_rows, len(split.buckets)
    (36, 3)
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import logging
import math
import os
import tempfile
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference.io import (
    MAX_REPORTED,
    PAIR_COLUMNS,
    DataError,
    OutputError,
    PairTable,
    check_pair_row,
    is_cpc_class,
    iter_csv_rows,
    raise_collected,
    score_row_writer,
)

log = logging.getLogger(__name__)

BUCKET_ROWS = 100_000  # rows a bucket should hold: what is in memory at once while scoring
SAMPLE_BYTES = 1 << 16  # read to estimate the bytes of a row, and so how many buckets a file needs


def id_hash(rid: str) -> int:
    return int.from_bytes(hashlib.blake2b(rid.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def bucket_of(anchor: str, context: str, n_buckets: int) -> int:
    key = f"{anchor}\0{context}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") % n_buckets


def max_open_buckets() -> int:
    """Bucket files are all open during the split: stay well inside this process's open-file limit."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(1, min(4096, (soft if soft != resource.RLIM_INFINITY else 4096) // 2 - 32))


def buckets_for(path: Path, rows_per_bucket: int) -> int:
    """Buckets enough for ``rows_per_bucket`` rows each, from the file's size and its first rows' length."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        sample = f.read(SAMPLE_BYTES)
    bytes_per_row = max(8, len(sample) / max(1, sample.count(b"\n")))
    return max(1, math.ceil(size / bytes_per_row / rows_per_bucket))


@dataclass
class SplitFile:
    """Pass 1's result: bucket files of whole groups, the ids in file order, and per-row labels."""

    path: Path  # the input
    buckets: list[Path]
    ids_file: Path  # "line,id" per row, in file order
    n_rows: int
    labels: np.ndarray | None = None  # the score column where the file has one (NaN where not a label)
    unknown_classes: dict[str, int] = field(default_factory=dict)


def split_pairs(path: str | os.PathLike, workdir: Path, n_buckets: int | None = None,
                rows_per_bucket: int = BUCKET_ROWS, vocab=None) -> SplitFile:
    """Pass 1: check every row and write it to its bucket (the first problems are one DataError, as
    :func:`inference.io.read_pairs` reports them). With ``vocab``, a context whose section the model does
    not know is an error here, before any scoring, and unknown classes are counted."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    n_buckets = min(n_buckets or buckets_for(path, rows_per_bucket), max_open_buckets())
    paths = [workdir / f"bucket{b:05d}.csv" for b in range(n_buckets)]
    handles: list = []
    ids_file = workdir / "ids.csv"
    errors: list[str] = []
    id_hashes, labels = array("Q"), array("f")
    has_score = None
    unknown: dict[str, int] = {}
    try:
        handles += [open(p, "w", newline="", encoding="utf-8", errors="surrogatepass") for p in paths]
        # every field quoted: a bare CR inside one would otherwise split its row when read back
        writers = [csv.writer(h, lineterminator="\n", quoting=csv.QUOTE_ALL) for h in handles]
        with open(ids_file, "w", newline="", encoding="utf-8", errors="surrogatepass") as ids_handle:
            ids_writer = csv.writer(ids_handle, lineterminator="\n", quoting=csv.QUOTE_ALL)
            for line, row in iter_csv_rows(path, PAIR_COLUMNS):
                if has_score is None:
                    has_score = "score" in row
                rid, anchor, target, context = check_pair_row(row, line, False, errors)
                if vocab is not None and is_cpc_class(context):  # a malformed code is already one error
                    section_problem(path, line, context, vocab, errors, unknown)
                if has_score:
                    labels.append(label_of(row["score"]))
                row_number = len(id_hashes)
                id_hashes.append(id_hash(rid))
                ids_writer.writerow([line, rid])
                writers[bucket_of(anchor, context, n_buckets)].writerow([row_number, line, rid, anchor, target, context])
                if len(errors) > MAX_REPORTED:
                    break
    finally:
        for handle in handles:
            handle.close()
    raise_collected(path, errors)
    raise_collected(path, duplicate_ids(ids_file, np.frombuffer(id_hashes, dtype=np.uint64)))
    return SplitFile(path, paths, ids_file, len(id_hashes),
                     np.frombuffer(labels, dtype=np.float32) if has_score else None, unknown)


def section_problem(path: Path, line: int, context: str, vocab, errors: list[str], unknown: dict[str, int]) -> None:
    if context[:1] not in vocab.section_index:
        errors.append(f"line {line}, column 'context': section {context[:1]!r} is not one the model knows")
    elif not vocab.is_known(context):
        unknown[context] = unknown.get(context, 0) + 1


def label_of(value: str | None) -> float:
    from inference.io import parse_score

    score = parse_score(value)
    return float("nan") if score is None else score


def in_slices(values: np.ndarray, size: int = 1 << 16) -> Iterator:
    """The array's values as Python scalars, a slice at a time (``tolist`` of the whole would cost ~30
    bytes a row at once)."""
    for start in range(0, len(values), size):
        yield from values[start:start + size].tolist()


def duplicate_ids(ids_file: Path, hashes: np.ndarray) -> list[str]:
    """Problems for duplicate ids: the hashes find candidates in one sort; the ids file confirms them."""
    ordered = np.sort(hashes)
    suspects = set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())
    del ordered
    if not suspects:
        return []
    first: dict[str, int] = {}
    problems: list[str] = []
    with open(ids_file, newline="", encoding="utf-8", errors="surrogatepass") as f:
        for (line, rid), h in zip(csv.reader(f), in_slices(hashes)):
            if h not in suspects:
                continue
            if rid in first:
                problems.append(f"line {line}, column 'id': duplicate id {rid!r} (first on line {first[rid]})")
                if len(problems) > MAX_REPORTED:
                    break
            else:
                first[rid] = int(line)
    return problems


def read_bucket(bucket: Path, source: Path) -> tuple[list[int], PairTable]:
    """(row numbers, the bucket's rows as a table named after the input file, with its line numbers)."""
    numbers, lines = [], []
    columns: dict[str, list] = {c: [] for c in PAIR_COLUMNS}
    with open(bucket, newline="", encoding="utf-8", errors="surrogatepass") as f:
        for number, line, *values in csv.reader(f):
            numbers.append(int(number))
            lines.append(int(line))
            for column, value in zip(PAIR_COLUMNS, values):
                columns[column].append(value)
    return numbers, PairTable(str(source), columns, lines)


def score_buckets(split: SplitFile, score_table: Callable[[PairTable], np.ndarray],
                  progress: Callable[[int], None] = lambda rows: None) -> np.ndarray:
    """Pass 2: every bucket scored on its own; (n_rows,) scores by row number."""
    scores = np.full(split.n_rows, np.nan, dtype=np.float32)
    for bucket in split.buckets:
        numbers, table = read_bucket(bucket, split.path)
        if numbers:
            scores[numbers] = score_table(table)
            progress(len(numbers))
        bucket.unlink()
    missing = np.flatnonzero(np.isnan(scores))
    if len(missing):  # every row is in one bucket; a gap would be a bug here, never a silent hole in the output
        raise RuntimeError(f"{len(missing)} row(s) got no score (first: row {missing[0]})")
    return scores


def write_ids_and_scores(split: SplitFile, scores: np.ndarray, output: Path) -> None:
    """Pass 3: ``id,score`` in file order, to a temporary file renamed over ``output`` only when complete."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as out, \
                open(split.ids_file, newline="", encoding="utf-8", errors="surrogatepass") as ids:
            write_row = score_row_writer(out)
            for (_, rid), score in zip(csv.reader(ids), in_slices(scores)):
                write_row(rid, score)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, output)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise OutputError(f"{output}: could not be written ({err.strerror or err}); "
                              f"{'the previous file is unchanged' if output.exists() else 'nothing was written'}") \
                from err
        raise


def pearson_of_labels(split: SplitFile, scores: np.ndarray) -> tuple[float, int] | None:
    """(Pearson of the scores against the file's score column, rows it holds a label for), if it has one."""
    if split.labels is None:
        return None
    has = ~np.isnan(split.labels)
    if has.sum() < 2 or np.std(split.labels[has]) == 0 or np.std(scores[has]) == 0:
        return float("nan"), int(has.sum())
    return float(np.corrcoef(scores[has], split.labels[has])[0, 1]), int(has.sum())


def progress_bar(total: int, enabled: bool) -> tuple[Callable[[int], None], Callable[[], None]]:
    """(advance by n rows, close): a tqdm bar of rows with rows/s and ETA, where wanted."""
    if not enabled:
        return (lambda rows: None), (lambda: None)
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="row", desc="scoring", dynamic_ncols=True, smoothing=0.1)
    return bar.update, bar.close


def scratch_folder(output: Path) -> tempfile.TemporaryDirectory:
    """A temporary folder for the passes beside the output (its file system has room for the output, and
    the buckets hold about the input's size); removed afterwards, whatever happens."""
    output.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=f".{output.name}.", suffix=".work", dir=output.parent)


class RepeatFilter(logging.Filter):
    """Lets the first record of each message template through and counts the rest: a warning about the
    rows of one bucket (cut targets, phrases without tokens) is said once per file, not once per bucket."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        if key in self.seen:
            self.dropped += 1
            return False
        self.seen.add(key)
        return True


@contextlib.contextmanager
def warnings_once(names: tuple[str, ...] = ("inference.phrase.inputs", "inference.phrase.multi")) -> Iterator[None]:
    repeats = RepeatFilter()
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addFilter(repeats)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(repeats)
        if repeats.dropped:
            log.warning("%d more warning(s) like those above, from the file's other buckets", repeats.dropped)
