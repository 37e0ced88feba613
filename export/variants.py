"""Derived graphs of an exported fp32 model: int8 (dynamic, per-channel) for CPU and fp16 for GPU.

* int8 goes through optimum's ``ORTQuantizer`` (onnxruntime's dynamic quantisation with a per-ISA
  preset): weights int8 per output channel, activations quantised on the fly. Per-channel matters for
  cross-encoders (per-tensor moved scores by up to 0.17 in a quick test, per-channel by up to 0.07).
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


def quantize_int8(src: str | Path, dst: str | Path, isa: str = "avx512_vnni") -> Path:
    """Dynamic int8 quantisation, per channel, with optimum's preset for the target CPU ``isa``."""
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    if isa not in INT8_ISAS:
        raise ValueError(f"int8 ISA {isa!r}: expected one of {INT8_ISAS}")
    config = getattr(AutoQuantizationConfig, isa)(is_static=False, per_channel=True)
    with tempfile.TemporaryDirectory() as tmp:
        # optimum reads a folder and writes config files beside its output; keep those out of the model folder.
        model = onnx.load(str(src))
        model.graph.ClearField("value_info")
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
