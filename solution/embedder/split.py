"""Split by patent: held-out patents are never trained on, in any role or section.

Example:
    >>> split = split_patents([str(i) for i in range(20)], heldout_fraction=0.25, seed=0)
    >>> len(split["train"]), len(split["heldout"]), set(split["train"]) & set(split["heldout"])
    (15, 5, set())
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def split_patents(patent_ids: Sequence[str], heldout_fraction: float, seed: int) -> dict[str, list[str]]:
    ids = sorted(set(patent_ids))
    random.Random(seed).shuffle(ids)
    n_held = max(1, round(len(ids) * heldout_fraction)) if heldout_fraction > 0 else 0
    held = set(ids[:n_held])
    # file order, so the split reads naturally and is stable
    return {"train": [p for p in patent_ids if p not in held], "heldout": [p for p in patent_ids if p in held]}
