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

import json
import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

MODEL_KINDS = ("phrase-scorer", "embedder")
MARKER = ".patent-similarity-export"  # in export's folders without a manifest.json: what --force may replace


def open_stage(out: Path, force: bool) -> Path:
    """An empty ``.NAME.partial`` folder beside ``out``; refuses an existing ``out`` without ``force``, and
    even with it anything but an empty folder or one this tool wrote (a user's folder is never replaced)."""
    out = Path(out)
    if out.exists() and not force:
        raise SystemExit(f"{out} already exists; pass --force to replace it, or choose another --out")
    if out.exists() and not is_replaceable(out):
        raise SystemExit(f"{out} is not a folder this exporter wrote (no {MARKER} or manifest.json in it); --force "
                         "only replaces those: choose another --out, or remove it yourself")
    stage = out.parent / f".{out.name}.partial"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    return stage


def is_replaceable(out: Path) -> bool:
    """An empty folder, or one an export wrote: its marker, or a model folder's manifest.json of a kind this
    project writes (many other tools write a manifest.json too)."""
    if not out.is_dir() or out.is_symlink():
        return False
    if not any(out.iterdir()) or (out / MARKER).is_file():
        return True
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("kind") in MODEL_KINDS


def publish(stage: Path, out: Path) -> None:
    """Move the finished ``stage`` to ``out``; an old ``out`` is set aside first and removed last."""
    out = Path(out)
    if not (stage / "manifest.json").is_file():  # a model folder's manifest marks it already
        (stage / MARKER).write_text('{"written_by": "python -m export"}\n')
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
