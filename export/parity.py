"""The parity gate of an export: the graphs must score like the PyTorch model they came from.

* fp32 graph vs PyTorch: max abs difference of the scores <= ``max_abs_diff`` (1e-4).
* int8 / fp16 graphs: Pearson with the labels may drop by at most ``max_pearson_loss`` (0.005)
  from the fp32 graph's, on the same validation rows.

Example:
    >>> import numpy as np
    >>> labels = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    >>> gate = ParityGate()
    >>> check = gate.check_variant("int8", labels, ref=labels, pred=labels[::-1])
    >>> check.passed, round(check.pearson_loss, 3)
    (False, 2.0)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from solution.phrase.evaluate import pearson


class ParityError(RuntimeError):
    """An exported graph does not reproduce the PyTorch model within the gate's tolerances."""


@dataclass
class Check:
    """One comparison of the gate; ``note`` says why a check was skipped."""

    name: str
    passed: bool
    max_abs_diff: float | None = None
    pearson_ref: float | None = None
    pearson: float | None = None
    pearson_loss: float | None = None
    rows: int = 0
    note: str = ""

    def line(self) -> str:
        parts = [f"{self.name}: {'ok' if self.passed else 'FAILED'}", f"rows {self.rows}"]
        if self.max_abs_diff is not None:
            parts.append(f"max |diff| vs PyTorch {self.max_abs_diff:.2e}")
        if self.pearson is not None:
            parts.append(f"Pearson {self.pearson:.4f} (fp32 graph {self.pearson_ref:.4f}, loss {self.pearson_loss:+.4f})")
        if self.note:
            parts.append(self.note)
        return ", ".join(parts)


@dataclass
class ParityGate:
    max_abs_diff: float = 1e-4
    max_pearson_loss: float = 0.005
    checks: list[Check] = field(default_factory=list)

    def check_fp32(self, name: str, torch_scores, onnx_scores, labels) -> Check:
        diff = float(np.max(np.abs(np.asarray(torch_scores) - np.asarray(onnx_scores))))
        check = Check(name, passed=diff <= self.max_abs_diff, max_abs_diff=diff, rows=len(labels),
                      pearson_ref=pearson(torch_scores, labels), pearson=pearson(onnx_scores, labels))
        check.pearson_loss = check.pearson_ref - check.pearson
        self.checks.append(check)
        return check

    def check_variant(self, name: str, labels, ref, pred, record: bool = True) -> Check:
        """Pearson of ``pred`` vs the fp32 graph's ``ref``; ``record=False`` tries without recording."""
        ref_p, p = pearson(ref, labels), pearson(pred, labels)
        if math.isnan(ref_p):
            check = Check(name, True, rows=len(labels), note="Pearson gate skipped: fp32 scores are constant")
        else:
            loss = ref_p - p if not math.isnan(p) else float("inf")  # constant output lost everything
            check = Check(name, loss <= self.max_pearson_loss, pearson_ref=ref_p, pearson=p, pearson_loss=loss,
                          rows=len(labels))
        check.max_abs_diff = float(np.max(np.abs(np.asarray(ref) - np.asarray(pred))))
        if record:
            self.checks.append(check)
        return check

    def skip(self, name: str, note: str) -> Check:
        check = Check(name, True, note=note)
        self.checks.append(check)
        return check

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def report(self) -> str:
        return "\n".join(f"  {c.line()}" for c in self.checks)

    def raise_if_failed(self, where: str) -> None:
        failed = [c for c in self.checks if not c.passed]
        if failed:
            limits = f"limits: fp32 max |diff| {self.max_abs_diff:g}, int8/fp16 Pearson loss {self.max_pearson_loss:g}"
            raise ParityError(f"{where}: parity gate failed for {', '.join(c.name for c in failed)} ({limits}):\n"
                              + self.report())

    def to_dict(self) -> dict:
        return {"max_abs_diff_limit": self.max_abs_diff, "max_pearson_loss_limit": self.max_pearson_loss,
                "checks": [asdict(c) for c in self.checks]}
