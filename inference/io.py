"""Reading and writing the CSVs of the toolkit: strict validation, atomic writes.

Every error names the file, the line and the column, and no row is ever dropped: a bad row stops the
load with a :class:`DataError` that lists the first problems found.

Example:
    >>> table = read_pairs("data/uspppm/test.csv")          # the vendored Kaggle test file
    >>> len(table), table.columns["anchor"][0]
    (36, 'opc drum')
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PAIR_COLUMNS = ("id", "anchor", "target", "context")
SCORE_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
MAX_REPORTED = 10  # problems listed in one DataError; loading stops after that many
BARE_CR = re.compile(rb"(?<=\r)(?!\n)(?=.)", re.S)  # splits after a CR that no LF follows (not at the end)
MAX_COLUMNS = 1024  # a pair file has 4-5 columns; a header far wider is not one (and would cost time per row)
MAX_LINE_BYTES = 1 << 24  # a pair row is under a kilobyte: a "line" of 16 MiB is not one, and is not read whole


class DataError(ValueError):
    """Bad input data; the message names file, line and column of each problem."""


class OutputError(ValueError):
    """An output path that cannot be written, or that would overwrite an input: raised before any work,
    or (disk full, folder gone read-only meanwhile) by the write itself, with the old file intact."""


@dataclass
class PairTable:
    """Columns of a phrase-pair CSV, in file order. ``lines[i]`` is the CSV line of row ``i``."""

    path: str
    columns: dict[str, list] = field(default_factory=dict)
    lines: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def ids(self) -> list[str]:
        return self.columns["id"]

    def subset(self, indices: Sequence[int]) -> PairTable:
        return PairTable(
            self.path,
            {k: [v[i] for i in indices] for k, v in self.columns.items()},
            [self.lines[i] for i in indices],
        )


def decode_utf8(path: str | os.PathLike, data: bytes) -> str:
    """Decode ``data`` as UTF-8 (BOM allowed) or raise a DataError naming the line of the bad bytes."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        col = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataError(
            f"{path}: line {line}, byte {col}: not valid UTF-8 ({data[err.start:err.end]!r}); "
            "re-save the file as UTF-8"
        ) from None


def raw_lines(path: Path, handle) -> Iterator[bytes]:
    """The lines of a binary file (ending in LF, CRLF or a bare CR, as universal-newline reading ends
    them), read at most MAX_LINE_BYTES at a time: a longer line is refused before it is held whole."""
    carry = b""
    number = 0
    while True:
        chunk = handle.readline(MAX_LINE_BYTES + 1)
        data = carry + chunk
        if not data:
            return
        pieces = BARE_CR.split(data) if b"\r" in data else [data]
        # readline returns fewer bytes than asked only at a newline or the end of the file
        carry = b"" if chunk.endswith(b"\n") or len(chunk) <= MAX_LINE_BYTES else pieces.pop()
        if len(carry) > MAX_LINE_BYTES:
            raise DataError(f"{path}: line {number + len(pieces) + 1}: longer than {MAX_LINE_BYTES // 2**20} MiB "
                            "without a line break; not a CSV of phrase pairs")
        number += len(pieces)
        yield from pieces


def utf8_lines(path: Path, handle) -> Iterator[str]:
    """The lines of a binary file (:func:`raw_lines`), decoded as UTF-8 one at a time (a BOM on the first
    is dropped); a bad byte is a DataError naming its line and position."""
    for number, raw in enumerate(raw_lines(path, handle), start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: line {number}, byte {err.start + 1}: not valid UTF-8 "
                            f"({raw[err.start:err.end]!r}); re-save the file as UTF-8") from None


def iter_csv_rows(path: str | os.PathLike, required: Iterable[str]) -> Iterator[tuple[int, dict]]:
    """(line where the row starts, row as a dict) for each row of a CSV, read as a stream (memory: one
    row); the header is checked first: readable, at most MAX_COLUMNS columns, each name once, the
    ``required`` ones present."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with open(path, "rb") as handle:
        reader = csv.reader(utf8_lines(path, handle))
        try:
            header = next(reader, [])
        except csv.Error as err:  # e.g. a field over the csv module's 131,072-character limit
            raise DataError(f"{path}: line 1 (header): not readable as CSV ({err})") from None
        check_header(path, header, required)
        start = reader.line_num + 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                raise DataError(f"{path}: line {start}: not readable as CSV ({err})") from None
            if len(fields) > len(header):
                raise DataError(f"{path}: line {start}: {len(fields)} fields, header has {len(header)}")
            if fields:  # a blank line is not a row (as csv.DictReader reads it)
                yield start, dict(zip(header, fields + [None] * (len(header) - len(fields))))
            start = reader.line_num + 1


def check_header(path: Path, header: list[str], required: Iterable[str]) -> None:
    if len(header) > MAX_COLUMNS:
        raise DataError(f"{path}: line 1 (header): {len(header)} columns; a pair file has 4 or 5 (at most "
                        f"{MAX_COLUMNS} are read)")
    repeated = sorted(c for c, n in Counter(header).items() if n > 1)
    if repeated:
        raise DataError(f"{path}: line 1 (header): column(s) {', '.join(map(repr, repeated))} appear more than once; "
                        "which one is meant is ambiguous")
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(
            f"{path}: line 1 (header): missing column(s) {', '.join(map(repr, missing))}; "
            f"found {header}"
        )


def read_csv_rows(path: str | os.PathLike, required: Iterable[str]) -> tuple[list[dict], list[int]]:
    """Rows of a CSV as dicts plus the line number where each row starts; checks the header."""
    rows, lines = [], []
    for line, row in iter_csv_rows(path, required):
        rows.append(row)
        lines.append(line)
    return rows, lines


def is_missing(value: str | None) -> bool:
    """Only an empty (or blank) field is missing: "NA", "none", "null" are real phrases (NA is sodium)."""
    return value is None or not value.strip()


def parse_score(value: str) -> float | None:
    """A score if it is one of the five levels, else None."""
    try:
        score = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(score):
        return None
    for level in SCORE_LEVELS:
        if abs(score - level) < 1e-9:
            return level
    return None


def read_pairs(path: str | os.PathLike, require_score: bool = False, allow_empty: bool = False) -> PairTable:
    """Read and validate ``id,anchor,target,context[,score]``; a header without rows is an error unless
    ``allow_empty`` (scoring: an empty shard of a pipeline is normal, training data is not).

    Checks (:func:`check_pair_row`): required columns (each once), UTF-8, empty ids or phrases (only an
    empty field is missing: "NA" and "null" are phrases), duplicate ids, context codes shaped
    like a CPC class (letter + two digits), and (with ``require_score``) scores in {0,.25,.5,.75,1}.
    Context codes are upper-cased; their vocabulary is checked later by :class:`CpcVocab`.
    """
    required = PAIR_COLUMNS + (("score",) if require_score else ())
    errors: list[str] = []
    columns: dict[str, list] = {c: [] for c in required}
    lines: list[int] = []
    first_line_of_id: dict[str, int] = {}
    for line, row in iter_csv_rows(path, required):
        values = check_pair_row(row, line, require_score, errors)
        rid = values[0]
        if rid in first_line_of_id:
            errors.append(f"line {line}, column 'id': duplicate id {rid!r} (first on line {first_line_of_id[rid]})")
        else:
            first_line_of_id[rid] = line
        for column, value in zip(required, values):
            columns[column].append(value)
        lines.append(line)
        if len(errors) > MAX_REPORTED:
            break
    raise_collected(path, errors)
    if not lines and not allow_empty:
        raise DataError(f"{path}: no data rows")
    return PairTable(str(path), columns, lines)


def check_pair_row(row: dict, line: int, require_score: bool, errors: list[str]) -> tuple:
    """(id, anchor, target, context[, score]) of one CSV row as the tools use them, appending what is wrong
    with it to ``errors``: the id byte-exact, phrases stripped, the context upper-cased."""
    for col in PAIR_COLUMNS:
        if is_missing(row[col]):
            errors.append(f"line {line}, column '{col}': empty value {row[col]!r}")
    context = (row["context"] or "").strip().upper()
    if not is_missing(row["context"]) and not is_cpc_class(context):
        errors.append(f"line {line}, column 'context': {row['context']!r} is not a CPC class code like 'A47'")
    values = (row["id"] or "", (row["anchor"] or "").strip(), (row["target"] or "").strip(), context)
    if not require_score:
        return values
    score = parse_score(row["score"])
    if score is None:
        errors.append(f"line {line}, column 'score': {row['score']!r} is not one of 0, 0.25, 0.5, 0.75, 1")
    return (*values, score)


def raise_collected(path: str | os.PathLike, errors: list[str]) -> None:
    """Raise one DataError listing the first problems found in ``path`` (nothing if none)."""
    if errors:
        more = " (stopped after the first problems)" if len(errors) > MAX_REPORTED else ""
        listing = "\n  ".join(errors[:MAX_REPORTED])
        raise DataError(f"{path}: {len(errors)} problem(s){more}:\n  {listing}")


def is_cpc_class(code: str) -> bool:
    return len(code) == 3 and code[0].isalpha() and code[1:].isdigit()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600 files; outputs get the usual permissions
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):  # disk full, quota, read-only: one line naming the file, not a traceback
            raise OutputError(f"{path}: could not be written ({err.strerror or err}); "
                              f"{'the previous file is unchanged' if path.exists() else 'nothing was written'}") from err
        raise


def check_output_path(output: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """``output`` if it can be written without touching an input; checked before the work, not after.

    Refused: a folder, an input file itself (same path, symlink or hard link), a location whose
    nearest existing folder is not writable.
    """
    out = Path(output)
    if out.is_dir():
        raise OutputError(f"{out}: is a folder; give a file path for the output")
    for source in inputs:
        source = Path(source)
        same = out.resolve() == source.resolve() or (out.exists() and source.exists() and os.path.samefile(out, source))
        if same:
            raise OutputError(f"{out}: is the input file {source}; write the output elsewhere (inputs are never overwritten)")
    folder = out.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: cannot write into {folder}")
    return out


def write_scores(path: str | os.PathLike, ids: Sequence[str], scores: Sequence[float]) -> None:
    """Write a Kaggle submission ``id,score`` atomically, in the given order."""
    if len(ids) != len(scores):
        raise ValueError(f"{len(ids)} ids but {len(scores)} scores")
    buffer = io.StringIO()
    write_row = score_row_writer(buffer)
    for rid, score in zip(ids, scores):
        write_row(rid, score)
    atomic_write_text(path, buffer.getvalue())


def score_row_writer(handle) -> Callable[[str, float], None]:
    """Writes the ``id,score`` header to ``handle``, then returns ``write(id, score)``: LF line ends, the id
    quoted where CSV needs it (the csv module leaves a bare CR unquoted when the line end is LF, and a
    reader would split the row there), the score finite, with 6 decimals."""
    plain = csv.writer(handle, lineterminator="\n")
    quoted = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_ALL)
    plain.writerow(["id", "score"])

    def write(rid: str, score: float) -> None:
        score = float(score)
        if not math.isfinite(score):
            raise ValueError(f"score for id {rid!r} is {score}")
        (quoted if "\r" in rid else plain).writerow([rid, f"{score:.6f}"])

    return write
