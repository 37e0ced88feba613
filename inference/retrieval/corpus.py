"""The patent corpus CSV: ``patent_id,patent_title,patent_abstract,cpc_subclasses[,patent_claims]``.

Torch-free, shared by training, evaluation and indexing so that all of them see the same rows. A bad
row (missing id, title or abstract; duplicate id) stops the load with a :class:`DataError` that names
the file, the line and the column.

Example:
    >>> corpus = read_patents("data/patents/a61_patents.csv")     # the vendored A61 corpus
    >>> corpus[0].patent_id, corpus[0].subclasses
    ('11213014', ('A61F',))
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from inference.io import MAX_REPORTED, DataError, is_missing, raise_collected, read_csv_rows

REQUIRED_COLUMNS = ("patent_id", "patent_title", "patent_abstract")
CLAIMS_COLUMNS = ("patent_claims", "claims")  # optional; the first one present is used

#: The text views a document or query can be made of (``+`` joins sections with ". ").
VIEWS = ("title", "abstract", "claims", "title+abstract", "title+abstract+claims")


@dataclass(frozen=True)
class Patent:
    patent_id: str
    title: str
    abstract: str
    subclasses: tuple[str, ...] = ()
    claims: str = ""

    def view(self, name: str) -> str:
        """The text of one view, e.g. ``"title+abstract"``; empty sections are skipped.

        >>> Patent("1", "Stent", "A mesh tube.").view("title+abstract")
        'Stent. A mesh tube.'
        """
        parts = []
        for section in name.split("+"):
            if section not in ("title", "abstract", "claims"):
                raise ValueError(f"unknown text view {name!r}; choose from {', '.join(VIEWS)}")
            text = getattr(self, section).strip()
            if text:
                parts.append(text.rstrip("."))
        return ". ".join(parts) + ("." if parts and name != "title" else "")


def read_patents(path: str | os.PathLike) -> list[Patent]:
    """Read and validate the corpus; every row is kept or the load fails (no silent drops)."""
    rows, lines = read_csv_rows(path, REQUIRED_COLUMNS)
    claims_col = next((c for c in CLAIMS_COLUMNS if rows and c in rows[0]), None)
    errors: list[str] = []
    patents: list[Patent] = []
    first_line: dict[str, int] = {}
    for row, line in zip(rows, lines):
        for col in REQUIRED_COLUMNS:
            if is_missing(row[col]):
                errors.append(f"line {line}, column '{col}': empty value {row[col]!r}")
        pid = (row["patent_id"] or "").strip()
        if pid and pid in first_line:
            errors.append(f"line {line}, column 'patent_id': duplicate id {pid!r} (first on line {first_line[pid]})")
        first_line.setdefault(pid, line)
        raw_codes = row.get("cpc_subclasses") or ""
        codes = tuple(c.strip().upper() for c in raw_codes.split(";") if c.strip())
        patents.append(Patent(pid, (row["patent_title"] or "").strip(), (row["patent_abstract"] or "").strip(), codes,
                              (row.get(claims_col) or "").strip() if claims_col else ""))
        if len(errors) > MAX_REPORTED:
            break
    raise_collected(path, errors)
    if not patents:
        raise DataError(f"{path}: no data rows")
    return patents
