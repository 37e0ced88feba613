"""Derived graphs of an exported fp32 model: int8 (dynamic, per-channel) for CPU and fp16 for GPU.

* int8 goes through onnxruntime's own dynamic quantiser (optimum is not needed): weights int8 per
  output channel, activations quantised on the fly, fused attention as QAttention. Per-channel because a
  cross-encoder's scores move far less with it than per-tensor (docs/decisions/fused-int8-export.md).
  The heads stay fp32 (``fp32_nodes``). Quantising the feed-forward down-projections too is faster, and
  in the fused graphs it usually passes the parity gate, so the phrase export tries that first and keeps
  them fp32 only when the gate says so (``ffn_down_fp32``; docs/decisions/fused-int8-export.md).
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
KEEP_FP32 = ("head.", "interaction.", "cpc.", "phrase_projection.")


def module_scope(node: onnx.NodeProto) -> str:
    """The module path an exporter recorded for a node: a weight pre-transposed into a constant (as for a
    Linear on 3-D inputs) no longer carries the module's name, the node does. dynamo keeps it in the
    node's metadata; the TorchScript exporter in the node's name ("/matcher/head/latent/MatMul")."""
    dynamo = " ".join(p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes")
    return f"{dynamo} {node.name.strip('/').replace('/', '.')}."


def fp32_nodes(model: onnx.ModelProto, keep_fp32: tuple[str, ...] = KEEP_FP32, ffn_down_fp32: bool = True) -> list[str]:
    """MatMul/Gemm/Gather nodes to leave in float: those reading a weight named by ``keep_fp32`` (heads,
    CPC fusion), and with ``ffn_down_fp32`` the feed-forward down-projections, whose GELU inputs can be
    too skewed for 8-bit activations. Products of two activations (the span pooling) are left alone by
    the quantiser itself (``MatMulConstBOnly``)."""
    producers = {out: node.op_type for node in model.graph.node for out in node.output}
    keep = []
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm", "Gather"):
            continue
        reads_head = any(k in name for name in [*node.input, module_scope(node)] for k in keep_fp32)
        if node.op_type == "Gather":  # embedding tables: the backbone's words go int8, CPC's stay float
            keep += [node.name] if reads_head else []
            continue
        after_gelu = producers.get(node.input[0], "") in ("Gelu", "FastGelu", "BiasGelu") or "gelu" in node.input[0].lower()
        if reads_head or (after_gelu and ffn_down_fp32):
            # the quantiser rewrites a Gemm into <name>_MatMul + Add before it looks at the exclusions
            keep += [node.name, f"{node.name}_MatMul"] if node.op_type == "Gemm" else [node.name]
    return keep


def quantize_int8(src: str | Path, dst: str | Path, isa: str = "avx512_vnni",
                  keep_fp32: tuple[str, ...] = KEEP_FP32, ffn_down_fp32: bool = True) -> Path:
    """Dynamic int8 quantisation with onnxruntime's own quantiser: weights int8 per output channel,
    activations uint8 (the VNNI fast path), a fused Attention becomes QAttention; the layers named by
    ``keep_fp32`` (and the other :func:`fp32_nodes`) stay float. ``isa`` "avx2" uses reduced-range
    weights, which that instruction set needs to avoid saturating its 16-bit accumulation."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if isa not in INT8_ISAS:
        raise ValueError(f"int8 ISA {isa!r}: expected one of {INT8_ISAS}")
    model = onnx.load(str(src))
    model.graph.ClearField("value_info")  # exporters' shapes that the rewritten nodes no longer match
    keep = fp32_nodes(model, keep_fp32, ffn_down_fp32)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model.onnx"
        onnx.save(model, str(staged))
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantiser logs its advice to pre-process on the root logger
        try:
            quantize_dynamic(staged, Path(tmp) / "int8.onnx", per_channel=True, reduce_range=isa == "avx2",
                             weight_type=QuantType.QInt8, nodes_to_exclude=keep,
                             # fused contrib ops defeat ONNX shape inference: their outputs are float
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True})
        finally:
            root.setLevel(level)
        shutil.move(str(Path(tmp) / "int8.onnx"), str(dst))
    return Path(dst)


def quantize_static_int8(src: str | Path, dst: str | Path, calibration: list[dict]) -> Path:
    """QDQ int8 with activation scales calibrated (min/max) on ``calibration`` feeds, weights per output
    channel; the nodes :func:`fp32_nodes` names stay float. Static scales make a row's score independent
    of its batch mates; OpenVINO runs the QDQ pairs as int8 kernels (onnxruntime's CPU QDQ path is slow)."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(calibration)

        def get_next(self):
            return next(self.feeds, None)

    model = onnx.load(str(src))
    model.graph.ClearField("value_info")
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model.onnx"
        onnx.save(model, str(staged))
        quantize_static(staged, Path(tmp) / "int8.onnx", Feeds(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=fp32_nodes(model, ffn_down_fp32=False),
                        calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["MatMul", "Attention", "Gather"],
                        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True})
        shutil.move(str(Path(tmp) / "int8.onnx"), str(dst))
    return Path(dst)


def convert_fp16(src: str | Path, dst: str | Path) -> Path:
    """fp16 weights and compute, float32 inputs and outputs (``keep_io_types``)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return Path(dst)
