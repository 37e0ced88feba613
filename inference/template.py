"""The model's input: its layout, and the pair layout's text ``anchor [SEP] target [SEP] title [SEP] others``.

``layout`` says how a table becomes sequences: ``pair`` (one per row, the text below) or ``multi``
(one per anchor+context group, every target scored at once: ``inference/phrase/multi.py``). The template
is saved with a run and an exported model, so inference rebuilds exactly the training inputs.

Grouping the other targets of the same anchor+context into the input was the key trick of the top
USPPPM solutions: the model sees the neighbourhood an annotator saw. Training shuffles each row's
group every epoch; prediction groups within the input file, each group's targets by text (or a seeded
shuffle of that: ``inference.phrase.multi.sibling_arrangement``), whatever the file's row order.

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
    group_targets: bool = True  # pair layout: append the other targets (the multi layout always has them)
    target_joiner: str = "; "
    layout: str = "pair"  # "pair" | "multi"
    cls_token: str = "[CLS]"
    max_targets: int = 32  # multi layout: targets per sequence at most

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
    anchors: list[str], targets: list[str], contexts: list[str], rng: random.Random | None = None,
    limit: int | None = None, arranged: list[list[int]] | None = None,
) -> list[list[str]]:
    """For each row, the targets of the other rows with the same anchor and context.

    File order by default; with ``rng`` each row's list is a random ordering (training). ``limit``
    keeps at most that many per row: the input is cut at ``max_length`` tokens anyway, and every
    target costs at least one, so the cut lists give the same inputs while memory grows linearly
    with the rows instead of with the square of a group's size. ``arranged`` (without ``rng``): each
    group's rows in the order to list them (``inference.phrase.multi.sibling_arrangement``).
    """
    if arranged is not None and rng is None:
        groups: list[list[str]] = [[] for _ in targets]
        for rows in arranged:
            keep = len(rows) - 1 if limit is None else min(limit, len(rows) - 1)
            for i in rows:
                groups[i] = [targets[j] for j in rows[: keep + 1] if j != i][:keep]
        return groups
    members: dict[tuple[str, str], list[int]] = {}
    position = []  # each row's place in its group
    for i, key in enumerate(zip(anchors, contexts)):
        position.append(len(members.setdefault(key, [])))
        members[key].append(i)
    groups = []
    for i, key in enumerate(zip(anchors, contexts)):
        rows = members[key]
        n_others = len(rows) - 1
        keep = n_others if limit is None else min(limit, n_others)
        if rng is None:
            others = [targets[j] for j in rows[: keep + 1] if j != i][:keep]
        else:  # a uniformly random ordered subset of the others, drawn without listing them all
            picks = rng.sample(range(n_others), keep)
            others = [targets[rows[p + (p >= position[i])]] for p in picks]
        groups.append(others)
    return groups
