"""Derived graphs of an exported fp32 model: int8 (dynamic, per-channel) for CPU and fp16 for GPU.

* int8 goes through optimum's ``ORTQuantizer`` (onnxruntime's dynamic quantisation with a per-ISA
  preset): weights int8 per output channel, activations quantised on the fly. Per-channel matters for
  cross-encoders (per-tensor moved scores by up to 0.17 in a quick test, per-channel by up to 0.07).
  The heads and the feed-forward down-projections stay fp32 (``fp32_nodes``): quantising everything
  cost a trained MiniLM 0.0071 validation Pearson, over the 0.005 gate; this costs 0.001-0.0015.
  The dynamo exporter fills ``graph.value_info`` with shapes that the quantiser's rewritten nodes no
  longer match, so it is cleared first.
* fp16 uses onnxruntime's own converter (onnxconverter-common is not a dependency) with float32
  inputs/outputs kept, so callers feed the same arrays to every variant.

Example:
    >>> quantize_int8("models/x/model.onnx", "models/x/model.int8.onnx")        # doctest: +SKIP
    >>> convert_fp16("models/x/model.onnx", "models/x/model.fp16.onnx")         # doctest: +SKIP
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import onnx

log = logging.getLogger(__name__)

INT8_ISAS = ("avx512_vnni", "avx2", "arm64")


# Weights of layers kept in fp32: the heads (cheap, and one output channel turns rounding into score error).
KEEP_FP32 = ("head.", "interaction.", "cpc.", "span_projection.")


def module_scope(node: onnx.NodeProto) -> str:
    """The module path the dynamo exporter recorded for a node ("" if none): a weight it pre-transposed
    into a constant (as for a Linear on 3-D inputs) no longer carries the module's name, the node does."""
    return " ".join(p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes")


def fp32_nodes(model: onnx.ModelProto, keep_fp32: tuple[str, ...] = KEEP_FP32) -> list[str]:
    """MatMul/Gemm nodes to leave in float: those reading a weight named by ``keep_fp32`` (the heads),
    and the feed-forward down-projections, whose GELU inputs are too skewed for 8-bit activations."""
    producers = {out: node.op_type for node in model.graph.node for out in node.output}
    keep = []
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        reads_head = any(k in name for name in [*node.input, module_scope(node)] for k in keep_fp32)
        after_gelu = producers.get(node.input[0], "") in ("Gelu", "FastGelu", "BiasGelu") or "gelu" in node.input[0].lower()
        if reads_head or after_gelu:
            keep.append(node.name)
    return keep


def quantize_int8(src: str | Path, dst: str | Path, isa: str = "avx512_vnni",
                  keep_fp32: tuple[str, ...] = KEEP_FP32) -> Path:
    """Dynamic int8 quantisation, per channel, with optimum's preset for the target CPU ``isa``; the
    layers named by ``keep_fp32`` stay float."""
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    if isa not in INT8_ISAS:
        raise ValueError(f"int8 ISA {isa!r}: expected one of {INT8_ISAS}")
    model = onnx.load(str(src))
    model.graph.ClearField("value_info")
    keep = fp32_nodes(model, keep_fp32)
    config = getattr(AutoQuantizationConfig, isa)(is_static=False, per_channel=True, nodes_to_exclude=keep)
    with tempfile.TemporaryDirectory() as tmp:
        # optimum reads a folder and writes config files beside its output; keep those out of the model folder.
        onnx.save(model, str(Path(tmp) / "model.onnx"))
        optimum_log = logging.getLogger("optimum")
        level = optimum_log.level
        optimum_log.setLevel(logging.ERROR)  # it warns that a bare graph has no transformers config.json
        try:
            quantizer = ORTQuantizer.from_pretrained(tmp, file_name="model.onnx")
            quantizer.quantize(save_dir=Path(tmp) / "out", quantization_config=config, file_suffix="int8")
        finally:
            optimum_log.setLevel(level)
        shutil.move(str(Path(tmp) / "out" / "model_int8.onnx"), str(dst))
    return Path(dst)


def convert_fp16(src: str | Path, dst: str | Path) -> Path:
    """fp16 weights and compute, float32 inputs and outputs (``keep_io_types``)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return Path(dst)
