"""Which graph of an exported model folder runs: one ``variants`` schema and one picker for every model kind.

The manifest's ``variants`` maps each exported variant to its graph files, one per fold for a phrase
scorer (the folds are averaged) and one for an embedder; fp32 is always there:

    {"fp32": ["model.onnx"], "int8": ["model.int8.onnx"], "fp16": ["model.fp16.onnx"]}

Example:
    >>> from inference.backend.manifest import Manifest
    >>> m = Manifest(".", {"variants": {"fp32": ["model.onnx"], "int8": ["model.int8.onnx"]}})
    >>> pick_variant(m, "auto", cuda=False, cpu_preferred="int8"), pick_variant(m, "auto", cuda=True, cpu_preferred="int8")
    ('int8', 'fp32')
"""

from __future__ import annotations

import logging

from inference.backend.manifest import Manifest, ModelFolderError

VARIANTS = ("auto", "fp32", "int8", "fp16", "bf16")  # bf16: the fp32 graph at bf16 precision, on OpenVINO

log = logging.getLogger(__name__)


def graph_lists(value) -> bool:
    """Whether ``value`` is a valid ``variants`` map (the manifest field rule)."""
    return (isinstance(value, dict) and "fp32" in value
            and all(isinstance(g, list) and g and all(isinstance(f, str) for f in g) for g in value.values())
            and len({len(g) for g in value.values()}) == 1)


VARIANTS_RULE = ("a map of variant -> its graph files (one per fold), with fp32", graph_lists)


def pick_variant(manifest: Manifest, variant: str, cuda: bool, cpu_preferred: str) -> str:
    """``variant`` if exported (an error naming what was, if not); for "auto" fp16 on CUDA and
    ``cpu_preferred`` on CPU, or fp32 when the preferred one was not exported (or failed its gate)."""
    available = manifest["variants"]
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    if variant != "auto":
        if variant not in available:
            raise ModelFolderError(f"{manifest.folder}: variant {variant!r} was not exported "
                                   f"(has: {', '.join(available)}); re-export without --no-{variant}, or see the "
                                   "manifest's parity checks for why it was left out")
        return variant
    preferred = "fp16" if cuda else cpu_preferred
    if preferred not in available:
        log.info("%s: no %s variant exported; using fp32", manifest.folder, preferred)
        return "fp32"
    return preferred
