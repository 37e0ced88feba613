"""Inverse cloze task (Lee et al., 2019): one sentence of a patent's abstract is the query, the rest of
the patent (its document view without that sentence) is the document it must find.

Rule-based queries share the document's own words and get easy after a few dozen steps; an ICT
sentence is real patent prose, written independently of the title, and changes every epoch (a new
sentence is drawn per step), so the signal does not run out. It is the ``ict`` query role: add it to
``roles`` (the query generator never sees it; training draws it on the fly).

Example:
    >>> import random
    >>> knee = Patent("1", "Knee implant", "A tibial tray holds an insert. The insert rotates. It is made of PE.")
    >>> inverse_cloze(knee, "title+abstract", random.Random(1))
    ('A tibial tray holds an insert.', 'Knee implant. The insert rotates. It is made of PE.')
    >>> inverse_cloze(Patent("2", "Stent", "A mesh tube."), "title+abstract", random.Random(0))   # nothing else: the title
    ('A mesh tube.', 'Stent.')
"""

from __future__ import annotations

import random
import re
from dataclasses import replace

from inference.retrieval.corpus import Patent

ROLE = "ict"
_SENTENCE_END = re.compile(r"(?<=[.;:!?])\s+(?=[A-Z(\d])")


def sentences(text: str) -> list[str]:
    """Split on sentence punctuation followed by a capital, digit or bracket (not inside "e.g. a")."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def inverse_cloze(patent: Patent, doc_view: str, rng: random.Random) -> tuple[str, str]:
    """(query sentence, ``doc_view`` of the patent without it); a patent without an abstract queries
    with its title."""
    parts = sentences(patent.abstract)
    if not parts:
        return patent.title, patent.view(doc_view)
    i = rng.randrange(len(parts))
    rest = replace(patent, abstract=" ".join(parts[:i] + parts[i + 1:]))
    return parts[i], rest.view(doc_view)
