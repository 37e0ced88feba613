"""The parity gate of an export, one for every model kind: the graphs must behave like the PyTorch model.

* fp32 graph vs PyTorch: max abs difference of the outputs (scores or embeddings) <= ``max_abs_diff``
  (1e-4). A failure here is fatal: the export stops and the old model folder stays.
* int8 / fp16 graphs: the task metric may drop by at most ``max_loss`` (0.005) from the fp32 graph's
  on the same rows: Pearson with the labels for the phrase scorer (``metric="pearson"``), title ->
  abstract nDCG@10 on held-out patents for embedders (``metric="ndcg@10"``). A variant that fails is
  dropped from the model folder (``drop_failed_variants``), and the manifest says why.

Example:
    >>> import numpy as np
    >>> labels = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    >>> gate = ParityGate()
    >>> gate.check_variant("fold0/int8", labels, ref=labels, pred=labels[::-1]).passed
    False
    >>> gate.drop_failed_variants(), gate.checks[0].dropped
    (['int8'], True)
    >>> ParityGate(metric="ndcg@10").check_metric("int8", reference=0.80, value=0.797, rows=200).line()
    'int8: ok, rows 200, ndcg@10 0.7970 (fp32 graph 0.8000, loss +0.0030)'
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
    """One comparison of the gate; ``note`` says why a check was skipped or which scheme shipped."""

    name: str  # "VARIANT" or "foldK/VARIANT"
    passed: bool
    metric: str = "pearson"
    max_abs_diff: float | None = None
    reference: float | None = None  # the metric of the fp32 graph (in the fp32 check: of PyTorch)
    value: float | None = None  # the metric of this graph
    loss: float | None = None  # reference - value
    rows: int = 0
    dropped: bool = False  # the variant failed and is not in the model folder
    note: str = ""

    @property
    def variant(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    def line(self) -> str:
        verdict = "ok" if self.passed else ("FAILED, dropped" if self.dropped else "FAILED")
        parts = [f"{self.name}: {verdict}", f"rows {self.rows}"]
        if self.variant == "fp32" and self.max_abs_diff is not None:
            parts.append(f"max |diff| vs PyTorch {self.max_abs_diff:.2e}")
        if self.value is not None:
            versus = "PyTorch" if self.variant == "fp32" else "fp32 graph"
            parts.append(f"{self.metric} {self.value:.4f} ({versus} {self.reference:.4f}, loss {self.loss:+.4f})")
        if self.note:
            parts.append(self.note)
        return ", ".join(parts)


@dataclass
class ParityGate:
    metric: str = "pearson"  # "pearson" (phrase scorer, against the labels) | "ndcg@10" (embedder retrieval)
    max_abs_diff: float = 1e-4
    max_loss: float = 0.005
    checks: list[Check] = field(default_factory=list)

    def check_fp32(self, name: str, torch_out, onnx_out, labels=None) -> Check:
        """Max |difference| of the outputs; with ``labels`` also the Pearson of both (phrase scores)."""
        diff = float(np.max(np.abs(np.asarray(torch_out) - np.asarray(onnx_out))))
        check = Check(name, passed=diff <= self.max_abs_diff, metric=self.metric, max_abs_diff=diff,
                      rows=len(np.asarray(onnx_out)))
        if labels is not None:
            check.reference, check.value = pearson(torch_out, labels), pearson(onnx_out, labels)
            check.loss = check.reference - check.value
        self.checks.append(check)
        return check

    def check_metric(self, name: str, reference: float, value: float, rows: int, record: bool = True) -> Check:
        """A variant whose metric is ``value`` where the fp32 graph's is ``reference`` (NaN: constant output)."""
        if math.isnan(reference):
            check = Check(name, True, metric=self.metric, rows=rows,
                          note=f"{self.metric} gate skipped: the fp32 graph's output is constant")
        else:
            loss = reference - value if not math.isnan(value) else float("inf")  # constant output lost everything
            check = Check(name, loss <= self.max_loss, metric=self.metric, reference=reference, value=value, loss=loss,
                          rows=rows)
        if record:
            self.checks.append(check)
        return check

    def check_variant(self, name: str, labels, ref, pred, record: bool = True) -> Check:
        """Phrase scores ``pred`` of a variant vs the fp32 graph's ``ref``: Pearson with ``labels``."""
        check = self.check_metric(name, pearson(ref, labels), pearson(pred, labels), len(labels), record)
        check.max_abs_diff = float(np.max(np.abs(np.asarray(ref) - np.asarray(pred))))
        return check

    def skip(self, name: str, note: str) -> Check:
        check = Check(name, True, metric=self.metric, note=note)
        self.checks.append(check)
        return check

    def drop_failed_variants(self) -> list[str]:
        """The variants (int8, fp16) with a failed check in any fold, marked dropped; the caller deletes
        their files. The fp32 graph is never dropped: its failure is :meth:`raise_if_failed`'s."""
        failed = sorted({c.variant for c in self.checks if not c.passed and c.variant != "fp32"})
        for check in self.checks:
            check.dropped = check.variant in failed
        return failed

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def report(self) -> str:
        return "\n".join(f"  {c.line()}" for c in self.checks)

    def raise_if_failed(self, where: str) -> None:
        """ParityError when a check failed that was not dropped (the fp32 graph, or a variant not yet dropped)."""
        failed = [c for c in self.checks if not c.passed and not c.dropped]
        if failed:
            limits = f"limits: fp32 max |diff| {self.max_abs_diff:g}, int8/fp16 {self.metric} loss {self.max_loss:g}"
            raise ParityError(f"{where}: parity gate failed for {', '.join(c.name for c in failed)} ({limits}):\n"
                              + self.report())

    def to_dict(self) -> dict:
        return {"metric": self.metric, "max_abs_diff_limit": self.max_abs_diff, "max_loss_limit": self.max_loss,
                "checks": [asdict(c) for c in self.checks]}
