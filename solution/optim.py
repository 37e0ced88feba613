"""AdamW with parameter groups: the head's lr, layer-wise lr decay, no weight decay on biases and norms.

The head (with its interaction layer) and the NT-Xent projection are new and small, so they get
``head_lr``. The CPC fusion (parameters ``cpc.*``) is new too but feeds the token embeddings directly:
it gets a group of its own at ``fusion_lr`` (the backbone's ``lr`` when not given), because Adam moves
every weight by about its lr per step whatever the gradient, and at ``head_lr`` (or a LoRA lr) the
added vector reaches its norm cap within a few dozen steps and becomes a per-context constant on every
token.

LoRA+ (Hayou, Ghosh & Yu, ICML 2024, arXiv 2402.12354): with ``lora_plus_ratio`` > 1 each adapter's
``B`` matrix trains at that multiple of its ``A``'s lr. ``B`` starts at zero, and with one lr for both
the adapter's update is dominated by ``A`` and learns features slowly; the paper sets the ratio near 16
and reports the same quality in about half the steps, which is what a 30-minute budget lacks.

Layer-wise lr decay (``layer_decay`` < 1): transformer layer ``i`` of ``L`` trains at
``lr * layer_decay ** (L - i)`` and the embeddings at ``lr * layer_decay ** (L + 1)``; the lower layers
hold the general language knowledge and move least. Parameters outside the layer stack (the CPC
fusion, shared relative-position tables, poolers) keep ``lr``.

``eps`` is the floor of Adam's per-weight normaliser ``sqrt(v)``. Where gradients are near zero (a
new head on pretrained features, the first steps), a tiny ``eps`` still gives every weight a full
``lr``-sized step in whatever direction the noise points, which can collapse a backbone's pooled
features to one vector; 1e-6 (BERT's own value) damps those steps
(docs/decisions/collapse-guard-and-adam-eps.md).

The fused kernel runs on CPU too: one pass over each parameter instead of a dozen ``foreach`` ops
over all of them, so the optimizer's share of a step shrinks and more steps fit the budget
(docs/decisions/cpu-step-speed.md).

Example:
    >>> from torch import nn
    >>> model = nn.ModuleDict({"embeddings": nn.Linear(2, 2),
    ...                        "layer": nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])})
    >>> [layer_depth(n) for n, _ in model.named_parameters()][::2]
    [0, 1, 2]
    >>> sorted({g["lr"] for g in build_optimizer(model, 1.0, 1.0, 0.0, layer_decay=0.5).param_groups})
    [0.125, 0.25, 0.5]
"""

from __future__ import annotations

import re

import torch

_LAYER = re.compile(r"\.layers?\.(\d+)\.")


def layer_depth(name: str) -> int | None:
    """0 for the embeddings, ``i + 1`` for transformer layer ``i``, None for everything else."""
    if (match := _LAYER.search("." + name)) is not None:
        return int(match.group(1)) + 1
    return 0 if ".embeddings." in "." + name else None


def build_optimizer(model: torch.nn.Module, lr: float, head_lr: float, weight_decay: float,
                    layer_decay: float = 1.0, eps: float = 1e-8, fusion_lr: float | None = None,
                    lora_plus_ratio: float = 1.0) -> torch.optim.AdamW:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    top = max((d for n, _ in named if (d := layer_depth(n)) is not None), default=0)
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, param in named:
        bare = name.removeprefix("module.")
        fresh = bare.startswith(("head.", "interaction.", "phrase_projection."))
        fusion = bare.startswith("cpc.") and fusion_lr is not None
        depth = None if fresh or fusion else layer_depth(name)
        scale = 1.0 if depth is None else layer_decay ** (top + 1 - depth)
        scale *= lora_plus_ratio if ".lora_B." in name else 1.0
        no_decay = param.ndim < 2 or "norm" in name.lower() or name.endswith(".bias")
        key = (head_lr if fresh else fusion_lr if fusion else lr * scale, 0.0 if no_decay else weight_decay)
        groups.setdefault(key, []).append(param)
    param_groups = [{"params": p, "lr": lr_, "base_lr": lr_, "weight_decay": wd} for (lr_, wd), p in groups.items()]
    return torch.optim.AdamW(param_groups, eps=eps, fused=True)
