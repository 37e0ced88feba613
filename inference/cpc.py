"""CPC context codes -> ids for the model's CPC embedding, and titles for the input text.

Training and inference share this file, so a code maps to the same ids and title in both.

Example:
    >>> vocab = CpcVocab.from_titles({"A": "HUMAN NECESSITIES"}, {"A47": "FURNITURE"})
    >>> vocab.encode(["A47", "A99"])
    ([1, 1], [1, 0], ['furniture', 'human necessities'], 1)
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from inference.io import DataError, PairTable

SECTIONS = "ABCDEFGHY"  # IPC sections A-H plus CPC's Y (cross-sectional tagging)


@dataclass
class CpcVocab:
    """Section and class vocabularies. Id 0 is "unknown" at each level.

    ``class_titles`` holds the classes the model was trained with; a class outside it maps to class
    id 0 and takes its section's title (the fallback the training data documents).
    """

    section_titles: dict[str, str]
    class_titles: dict[str, str]

    def __post_init__(self) -> None:
        self.section_index = {s: i + 1 for i, s in enumerate(SECTIONS)}
        self.class_index = {c: i + 1 for i, c in enumerate(sorted(self.class_titles))}

    @property
    def num_sections(self) -> int:
        return len(SECTIONS) + 1

    @property
    def num_classes(self) -> int:
        return len(self.class_index) + 1

    def is_known(self, code: str) -> bool:
        return code in self.class_index

    def encode(self, codes: list[str]) -> tuple[list[int], list[int], list[str], int]:
        """(section ids, class ids, lower-cased titles, number of unknown classes)."""
        sections, classes, titles, unknown = [], [], [], 0
        for code in codes:
            code = code.strip().upper()
            section = code[:1]
            if section not in self.section_index:
                raise ValueError(f"context {code!r}: unknown CPC section {section!r} (expected one of {SECTIONS})")
            sections.append(self.section_index[section])
            if code in self.class_index:
                classes.append(self.class_index[code])
                titles.append(self.class_titles[code].lower())
            else:
                unknown += 1
                classes.append(0)
                titles.append(self.section_titles.get(section, "").lower())
        return sections, classes, titles, unknown

    def to_dict(self) -> dict:
        return {"section_titles": self.section_titles, "class_titles": self.class_titles}

    @classmethod
    def from_titles(cls, section_titles: dict[str, str], class_titles: dict[str, str]) -> CpcVocab:
        return cls(dict(section_titles), dict(class_titles))

    @classmethod
    def from_dict(cls, data: dict) -> CpcVocab:
        return cls(dict(data["section_titles"]), dict(data["class_titles"]))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> CpcVocab:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    @classmethod
    def from_data_dir(cls, cpc_dir: str | Path) -> CpcVocab:
        """Build from ``uspppm_context_titles.csv`` (classes) and ``ipc_section_class_subclass_titles.csv``."""
        cpc_dir = Path(cpc_dir)
        sections: dict[str, str] = {}
        with open(cpc_dir / "ipc_section_class_subclass_titles.csv", encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                if row["level"] == "section":
                    sections[row["code"]] = row["title"]
        sections.setdefault("Y", "GENERAL TAGGING OF NEW TECHNOLOGICAL DEVELOPMENTS")
        classes: dict[str, str] = {}
        with open(cpc_dir / "uspppm_context_titles.csv", encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                classes[row["context"]] = row["class_title"]
        return cls(sections, classes)


def encode_contexts(table: PairTable, vocab: CpcVocab,
                    logger: logging.Logger | None = None) -> tuple[list[int], list[int], list[str]]:
    """(section ids, class ids, titles) of a table's contexts, shared by training and inference.

    An unknown section is a :class:`DataError` naming the line; unknown classes fall back to their
    section (title and embedding) with one warning that counts them.
    """
    logger = logger or logging.getLogger(__name__)
    try:
        sections, classes, titles, unknown = vocab.encode(table.columns["context"])
    except ValueError as err:
        bad = next(i for i, c in enumerate(table.columns["context"]) if c[:1] not in vocab.section_index)
        raise DataError(f"{table.path}: line {table.lines[bad]}, column 'context': {err}") from None
    if unknown:
        codes = sorted({c for c in table.columns["context"] if not vocab.is_known(c)})
        logger.warning(
            "%s: %d row(s) have a context class the model was not trained on (%s); using the section "
            "title and the section embedding for them", table.path, unknown, ", ".join(codes[:10]))
    return sections, classes, titles
