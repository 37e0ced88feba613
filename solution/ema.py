"""An exponential moving average of the trainable weights, evaluated and saved in their place.

Averaging the weights of the last steps is a small, cheap gain that top USPPPM write-ups report
(docs/decisions/one-model.md), at the cost of one fp32 copy of what trains (all of the backbone when it
is fully fine-tuned, the adapters under LoRA). Runs here are short (a few hundred steps a fold), so the
decay warms up with the step count, as timm's ``ModelEmaV3`` does:
``min(decay, 1 - (1 + step) ** -0.75)``, an average over roughly the last ``step ** 0.75`` steps that
never gives the random head of step 0 a lasting share.

Example:
    >>> layer = torch.nn.Linear(1, 1, bias=False)
    >>> _ = layer.weight.data.fill_(0.0); ema = WeightEMA.of(layer, decay=0.5)
    >>> for value in (1.0, 2.0, 3.0):
    ...     _ = layer.weight.data.fill_(value); ema.update(layer)
    >>> with ema.applied(layer):
    ...     round(layer.weight.item(), 4)   # the average (decay 0.41 at the first step, then 0.5)
    2.1487
    >>> layer.weight.item()               # the trained weight again, after
    3.0
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

WARMUP_POWER = 0.75


@dataclass
class WeightEMA:
    decay: float
    shadow: dict[str, torch.Tensor]  # fp32 averages of the parameters that train, by name
    updates: int = 0

    @classmethod
    def of(cls, model: torch.nn.Module, decay: float) -> WeightEMA:
        return cls(decay, {name: p.detach().float().clone() for name, p in trainable(model)})

    def current_decay(self) -> float:
        return min(self.decay, 1.0 - (1.0 + self.updates) ** -WARMUP_POWER)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Fold the model's weights after an optimizer step into the average."""
        self.updates += 1
        keep = self.current_decay()
        for name, p in trainable(model):
            self.shadow[name].lerp_(p.detach().float(), 1.0 - keep)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        """Replace the model's trainable weights with their averages (for good: before the fold is saved)."""
        for name, p in trainable(model):
            p.copy_(self.shadow[name].to(p.dtype))

    @contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """The averaged weights inside the block (validation), the trained ones again after it."""
        trained = {name: p.detach().clone() for name, p in trainable(model)}
        self.copy_to(model)
        try:
            yield
        finally:
            with torch.no_grad():
                for name, p in trainable(model):
                    p.copy_(trained[name])

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        mismatched = set(self.shadow) ^ set(state["shadow"])
        if mismatched:
            raise ValueError(f"checkpoint's weight average does not fit the model: {sorted(mismatched)[:5]}")
        self.decay, self.updates = float(state["decay"]), int(state["updates"])
        self.shadow = {name: t.float() for name, t in state["shadow"].items()}


def trainable(model: torch.nn.Module) -> Iterator[tuple[str, torch.nn.Parameter]]:
    return ((name, p) for name, p in model.named_parameters() if p.requires_grad)
