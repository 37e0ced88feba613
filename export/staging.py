"""Model folders are written beside their target and moved into place only when every gate passed.

``python -m export --force`` over an existing folder keeps the old one until the new one is complete:
a failed gate or a crash leaves the old model untouched and the new files in ``.NAME.partial``.

Example:
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "model"
    >>> stage = open_stage(out, force=False)
    >>> _ = (stage / "manifest.json").write_text("{}")
    >>> publish(stage, out)
    >>> sorted(p.name for p in out.iterdir())
    ['manifest.json']
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


def open_stage(out: Path, force: bool) -> Path:
    """An empty ``.NAME.partial`` folder beside ``out``; refuses an existing ``out`` without ``force``."""
    out = Path(out)
    if out.exists() and not force:
        raise SystemExit(f"{out} already exists; pass --force to replace it, or choose another --out")
    stage = out.parent / f".{out.name}.partial"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    return stage


def publish(stage: Path, out: Path) -> None:
    """Move the finished ``stage`` to ``out``; an old ``out`` is set aside first and removed last."""
    out = Path(out)
    old = out.parent / f".{out.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    stage.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def apply_gate(gate, stage: Path, variants: dict[str, list[str]], where: str) -> None:
    """Drop every variant (int8, fp16) that failed its parity check in any fold: its graphs are deleted
    from ``stage`` and its entry from ``variants``, with a warning and the numbers. A failed fp32 graph
    raises ``ParityError`` (``stage`` is kept for inspection)."""
    for variant in gate.drop_failed_variants():
        for name in variants.pop(variant, []):
            (stage / name).unlink(missing_ok=True)
        lines = "; ".join(c.line() for c in gate.checks if c.variant == variant)
        log.warning("%s: the %s graph is not shipped, it failed the parity gate: %s", where, variant, lines)
    gate.raise_if_failed(f"{where} (files kept in {stage} for inspection)")
