"""torch module -> ONNX file with dynamic batch and sequence axes (torch.onnx; optimum cannot take it).

optimum's exporter works from a ``transformers`` model class plus an ``OnnxConfig``; the phrase
matcher is a custom module around the backbone (CPC fusion on the input embeddings, pooling, ordinal
head), so the graph comes from ``torch.onnx.export``. Two exporters are offered:

* ``legacy`` (default): the TorchScript tracer (``dynamo=False``, opset 17), deprecated upstream but
  fast and the graph onnxruntime's transformer optimizer can fuse (``export/fusion.py``), hence the
  default (docs/decisions/fused-int8-export.md).
* ``dynamo``: ``torch.export``-based (opset 18), PyTorch's supported path from 2.9 on; slower to
  export, and its graphs run unfused.

Either exporter's graph must match PyTorch within the parity gate's tolerance (``export/parity.py``).

Example:
    >>> spec = GraphSpec(inputs={"x": {0: "batch"}}, outputs={"y": {0: "batch"}})      # doctest: +SKIP
    >>> export_graph(module, (torch.ones(2, 3),), spec, "model.onnx")                   # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch

log = logging.getLogger(__name__)

EXPORTERS = ("legacy", "dynamo")
DEFAULT_EXPORTER = "legacy"
OPSETS = {"legacy": 17, "dynamo": 18}  # each exporter's default: 18 is dynamo's native opset


def default_opset(exporter: str) -> int:
    return OPSETS[exporter]


@dataclass
class GraphSpec:
    """Names of the graph's inputs and outputs, each with its dynamic axes ({axis: name})."""

    inputs: dict[str, dict[int, str]]
    outputs: dict[str, dict[int, str]]


def _dynamic_shapes(spec: GraphSpec, module: torch.nn.Module) -> tuple:
    """One entry per positional input, in the spec's order; nested once if ``forward`` takes ``*inputs``."""
    dims: dict[str, object] = {}
    for axes in spec.inputs.values():
        for name in axes.values():
            dims.setdefault(name, torch.export.Dim(name))
    shapes = tuple({axis: dims[name] for axis, name in axes.items()} for axes in spec.inputs.values())
    params = inspect.signature(module.forward).parameters.values()
    return (shapes,) if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params) else shapes


def export_graph(module: torch.nn.Module, example: tuple, spec: GraphSpec, path: str | Path,
                 exporter: str = DEFAULT_EXPORTER, opset: int | None = None) -> Path:
    """Export ``module(*example)`` to one self-contained ``path`` (weights inside, no external data)."""
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter {exporter!r}: expected one of {EXPORTERS}")
    path = Path(path)
    opset = opset or default_opset(exporter)
    module.eval()
    names = list(spec.inputs)
    with warnings.catch_warnings(), torch.no_grad():
        # Both exporters warn about things that do not apply here (tracer constants, deprecations).
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            program = torch.onnx.export(module, example, dynamo=True, input_names=names, output_names=list(spec.outputs),
                                        dynamic_shapes=_dynamic_shapes(spec, module), opset_version=opset, verbose=False)
            program.save(str(path), external_data=False)
        else:
            torch.onnx.export(module, example, str(path), dynamo=False, input_names=names,
                              output_names=list(spec.outputs), dynamic_axes={**spec.inputs, **spec.outputs},
                              opset_version=opset, do_constant_folding=True)
    onnx.checker.check_model(str(path))
    return path


def graph_inputs(path: str | Path) -> list[str]:
    """Input names of a saved graph (an exporter may drop an input the module ignores)."""
    return [i.name for i in onnx.load(str(path), load_external_data=False).graph.input]
