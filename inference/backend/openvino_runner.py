"""OpenVINO as a second CPU runtime for the same ONNX files: an optional extra (``pip install ".[openvino]"``).

OpenVINO reads the exported ``model.onnx`` directly (no conversion step, no torch) and can run it at bf16
inference precision on CPUs with native bf16 (AVX512-BF16, AMX), where it can beat onnxruntime at nearly
the same scores (docs/decisions/runtime-choice.md). The runner has the interface of
:class:`~inference.backend.session.OnnxRunner` (``providers``, ``input_names``, ``run``), so the scorers
do not know which runtime they hold.

Both precisions batch like onnxruntime's fp32: a row's score does not move with its batch mates or their
padding (bf16 rounds weights and activations, but per row; tests/test_inference.py checks it within 1e-5).

Example:
    >>> runner = OpenVinoRunner.create("models/NAME/model.onnx", precision="bf16")   # doctest: +SKIP
    >>> runner.providers                                                             # doctest: +SKIP
    ['OpenVINO CPU (bf16)']
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.backend.cores import usable_cores

PRECISIONS = {"fp32": "f32", "bf16": "bf16"}  # our variant name -> OpenVINO's inference precision hint
INSTALL_HINT = 'pip install ".[openvino]"  (or: pip install openvino)'


class RuntimeMissingError(RuntimeError):
    """A runtime was asked for that is not installed, or cannot run the asked precision here."""


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def require_openvino() -> None:
    """The one "not installed" error, raised before any model file is read."""
    if not openvino_installed():
        raise RuntimeMissingError(f"runtime 'openvino' was asked for but is not installed: {INSTALL_HINT}")


def cpu_precisions() -> set[str]:
    """The precisions OpenVINO's CPU plugin says this CPU runs natively (of :data:`PRECISIONS`); empty
    without OpenVINO. bf16 is listed only where the CPU has it (AVX512-BF16 or AMX): elsewhere OpenVINO
    would quietly run f32 under a bf16 hint."""
    if not openvino_installed():
        return set()
    import openvino as ov

    capabilities = set(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    return {"fp32"} | ({"bf16"} if "BF16" in capabilities else set())


@dataclass
class OpenVinoRunner:
    """One ONNX graph compiled by OpenVINO for the CPU; feeds numpy arrays, returns the first output."""

    compiled: Any  # openvino.CompiledModel
    request: Any  # its one InferRequest, reused: a request per call costs an allocation of every buffer
    precision: str

    @classmethod
    def create(cls, path: str | os.PathLike, precision: str = "bf16", threads: int | None = None) -> OpenVinoRunner:
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}: OpenVINO runs {', '.join(PRECISIONS)}")
        require_openvino()
        if precision not in cpu_precisions():
            raise RuntimeMissingError(f"runtime 'openvino' with {precision}: this CPU has no native {precision} "
                                      f"(OpenVINO offers {sorted(cpu_precisions())}); use variant fp32")
        import openvino as ov

        config = {
            "INFERENCE_PRECISION_HINT": PRECISIONS[precision],
            "INFERENCE_NUM_THREADS": threads or usable_cores(),
            "PERFORMANCE_HINT": "LATENCY",  # one stream: every core on the one request, as with onnxruntime
        }
        try:
            compiled = ov.Core().compile_model(str(path), "CPU", config)
        except RuntimeError as err:  # OpenVINO's one exception type for a file it cannot read as a graph
            from inference.backend.manifest import ModelFolderError

            raise ModelFolderError(f"{path}: not a valid ONNX graph for OpenVINO ({' '.join(str(err).split())[:300]})") \
                from None
        return cls(compiled, compiled.create_infer_request(), precision)

    @property
    def providers(self) -> list[str]:
        """What really runs, read back from the compiled model (not the hint that was asked for)."""
        actual = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # "bf16" | "f32"
        return [f"OpenVINO CPU ({ {'f32': 'fp32'}.get(actual, actual)})"]

    @property
    def on_cuda(self) -> bool:
        return False

    @property
    def input_names(self) -> list[str]:
        return [port.any_name for port in self.compiled.inputs]

    @property
    def output_dim(self) -> int | None:
        last = self.compiled.output(0).get_partial_shape()[-1]
        return last.get_length() if last.is_static else None

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        result = self.request.infer(feeds)
        return np.array(result[self.compiled.output(0)], dtype=np.float32)  # a copy: the next infer reuses the buffer
