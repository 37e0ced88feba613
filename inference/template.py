"""The model's input text: ``anchor [SEP] target [SEP] context title [SEP] other targets``.

Grouping the other targets of the same anchor+context into the input was the key trick of the top
USPPPM solutions: the model sees the neighbourhood an annotator saw. Training shuffles each row's
group every epoch; prediction groups within the input file, in file order.

Example:
    >>> t = InputTemplate(sep_token="[SEP]")
    >>> groups = group_other_targets(["a", "a", "b"], ["x", "y", "z"], ["A47"] * 3)
    >>> groups
    [['y'], ['x'], []]
    >>> t.build("a", "x", "furniture", groups[0])
    'a [SEP] x [SEP] furniture [SEP] y'
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass


@dataclass
class InputTemplate:
    sep_token: str = "[SEP]"
    use_title: bool = True
    group_targets: bool = True
    target_joiner: str = "; "

    def build(self, anchor: str, target: str, title: str, others: list[str]) -> str:
        parts = [anchor, target]
        if self.use_title:
            parts.append(title)
        if self.group_targets and others:
            parts.append(self.target_joiner.join(others))
        return f" {self.sep_token} ".join(parts)

    def build_all(self, anchors, targets, titles, groups) -> list[str]:
        return [self.build(a, t, ti, g) for a, t, ti, g in zip(anchors, targets, titles, groups)]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> InputTemplate:
        return cls(**data)


def group_other_targets(
    anchors: list[str], targets: list[str], contexts: list[str], rng: random.Random | None = None
) -> list[list[str]]:
    """For each row, the targets of the other rows with the same anchor and context.

    File order by default; with ``rng`` each row's list is shuffled independently (training).
    """
    members: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(anchors, contexts)):
        members.setdefault(key, []).append(i)
    groups = []
    for i, key in enumerate(zip(anchors, contexts)):
        others = [targets[j] for j in members[key] if j != i]
        if rng is not None:
            rng.shuffle(others)
        groups.append(others)
    return groups
