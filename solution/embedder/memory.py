"""Cross-batch memory: the document vectors of the last few steps as extra negatives, for free.

On 2 CPU cores a batch holds 32 patents, so each query meets 31 in-batch negatives, and the
synthetic queries stop teaching after a few dozen steps (their loss falls near zero). A mined
negative costs a whole extra document encoding (2.4x per step). The memory instead keeps the last
``size`` document vectors the model already computed (detached: no gradient flows into the past),
after XBM (Wang et al., 2020, "Cross-Batch Memory for Embedding Learning"): many more negatives at
the price of a larger logit matrix. Vectors of the step's own patents are masked by id in the loss,
so a patent met again in the next epoch is never its own negative.

Example:
    >>> import torch
    >>> memory = DocumentMemory(size=3)
    >>> memory.push(torch.eye(2), torch.tensor([7, 8])); memory.push(torch.ones(2, 2), torch.tensor([9, 10]))
    >>> memory.ids.tolist()   # newest first, the oldest beyond ``size`` dropped
    [9, 10, 7]
"""

from __future__ import annotations

import torch


class DocumentMemory:
    def __init__(self, size: int):
        self.size = size
        self.vecs: torch.Tensor | None = None
        self.ids: torch.Tensor | None = None

    def push(self, vecs: torch.Tensor, ids: torch.Tensor) -> None:
        """Remember a step's document vectors (``ids``: the training patent of each row)."""
        vecs, ids = vecs.detach().float(), ids.detach()
        if self.vecs is not None:
            vecs, ids = torch.cat([vecs, self.vecs]), torch.cat([ids, self.ids])
        self.vecs, self.ids = vecs[: self.size], ids[: self.size]
