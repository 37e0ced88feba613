"""onnxruntime sessions: provider choice that is checked, not assumed, and a runner with IO binding on CUDA.

onnxruntime silently drops CUDAExecutionProvider when the CUDA/cuDNN libraries fail to load, so the
provider list actually in use is read back from ``session.get_providers()`` after creation:
``device="cuda"`` without a working CUDA provider is an error, ``device="auto"`` falls back to CPU with
one warning (only when this onnxruntime build offers CUDA at all; a CPU-only build is just CPU).

Example:
    >>> runner = OnnxRunner.create("models/NAME/model.int8.onnx", device="cpu")   # doctest: +SKIP
    >>> runner.providers                                                           # doctest: +SKIP
    ['CPUExecutionProvider']
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

try:
    import onnxruntime as ort
    from onnxruntime.capi.onnxruntime_pybind11_state import (
        Fail,
        InvalidArgument,
        InvalidGraph,
        InvalidProtobuf,
        NoSuchFile,
        NotImplemented,
    )
except ModuleNotFoundError as err:  # the runtime is an extra: say which, in one line
    if err.name != "onnxruntime":
        raise
    raise ModuleNotFoundError("no ONNX runtime is installed: pip install 'patent-similarity[cpu]' (onnxruntime), or "
                              "'patent-similarity[gpu]' (onnxruntime-gpu, CUDA); one of the two, never both",
                              name="onnxruntime") from err

from inference.backend.cores import usable_cores
from inference.backend.manifest import ModelFolderError

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")


class DeviceError(RuntimeError):
    """The requested device cannot be used by this onnxruntime installation."""


def session_options(threads: int | None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # One graph runs at a time: all cores go to intra-op parallelism (matmuls), none to inter-op.
    options.intra_op_num_threads = threads or usable_cores()  # ORT's intra-op pool matches the usable cores
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # ORT's constant-folding notices are noise to a user
    return options


def sequences_per_pass(variant: str, batch_size: int) -> int:
    """How many sequences one forward pass of ``variant`` may take. The int8 graphs quantise their
    activations with scales taken over the whole pass (dynamic quantisation): batched, a row's score
    would move with its batch mates and their padding, so int8 runs one sequence per pass and is per-row
    deterministic (docs/decisions/int8-one-sequence-per-pass.md). The rule for every scorer, encoder
    and export gate.

    >>> sequences_per_pass("int8", 16), sequences_per_pass("fp32", 16)
    (1, 16)
    """
    return 1 if variant == "int8" else batch_size


DEVICE_HELP = ("auto: CUDA when onnxruntime can use it, else CPU (one warning if CUDA failed); cuda: fail unless "
               "CUDA really works; cpu: CPU only (default: auto)")


def cuda_offered() -> bool:
    return CUDA in ort.get_available_providers()


def wants_cuda(device: str) -> bool:
    """Whether ``device`` should try CUDA first (used to pick the default variant before loading)."""
    if device not in DEVICES:
        raise ValueError(f"device {device!r}: expected one of {', '.join(DEVICES)}")
    return device == "cuda" or (device == "auto" and cuda_offered())


def create_session(path: str | os.PathLike, device: str, threads: int | None = None) -> ort.InferenceSession:
    """A session on ``device`` ("auto" | "cpu" | "cuda"), with the providers it really got checked."""
    if not wants_cuda(device):
        return cpu_session(path, threads)
    if device == "cuda" and not cuda_offered():
        raise DeviceError(
            f"device='cuda' was asked for, but this onnxruntime ({ort.__version__}) has no CUDA provider "
            f"(available: {ort.get_available_providers()}); install onnxruntime-gpu in place of onnxruntime, "
            "or use device='cpu'")
    try:
        session = ort.InferenceSession(str(path), session_options(threads), providers=[CUDA, CPU])
    except Exception as err:  # a broken CUDA install can fail at creation instead of falling back
        if device == "cuda":
            raise DeviceError(f"device='cuda': onnxruntime could not create a CUDA session: {err}") from err
        session = None
        reason = str(err).splitlines()[0]
    else:
        reason = "the CUDA/cuDNN libraries did not load (see onnxruntime's log)"
    if session is not None and session.get_providers()[0] == CUDA:
        return session
    if device == "cuda":
        raise DeviceError(
            f"device='cuda': onnxruntime fell back to {session.get_providers()} because {reason}; check that "
            "the CUDA and cuDNN versions match onnxruntime-gpu's requirements, or use device='cpu'")
    log.warning("device='auto': CUDA is not usable (%s); running on CPU", reason)
    return cpu_session(path, threads)


def cpu_session(path: str | os.PathLike, threads: int | None) -> ort.InferenceSession:
    """A CPU session; a file onnxruntime cannot read as a graph is a model-folder error naming it."""
    try:
        return ort.InferenceSession(str(path), session_options(threads), providers=[CPU])
    except (InvalidProtobuf, InvalidGraph, InvalidArgument, NoSuchFile, NotImplemented, Fail) as err:
        raise ModelFolderError(f"{path}: not a valid ONNX graph ({' '.join(str(err).split())[:300]})") from None


@dataclass
class OnnxRunner:
    """One ONNX graph ready to run: feeds numpy arrays, returns the first output as numpy."""

    session: ort.InferenceSession

    @classmethod
    def create(cls, path: str | os.PathLike, device: str = "auto", threads: int | None = None) -> OnnxRunner:
        return cls(create_session(path, device, threads))

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    @property
    def on_cuda(self) -> bool:
        return self.providers[0] == CUDA

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    @property
    def output_dim(self) -> int | None:
        """The last axis of the first output where the graph fixes it (an embedder's width), else None."""
        last = self.session.get_outputs()[0].shape[-1]
        return last if isinstance(last, int) else None

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        if self.on_cuda:
            return self._run_bound(feeds)
        return self.session.run(None, feeds)[0]

    def _run_bound(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        # IO binding: inputs copied to the GPU once, the output allocated there, so ORT does not
        # stage every tensor through pageable host memory. Not exercised by the CPU-only tests.
        binding = self.session.io_binding()
        for name, array in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), "cuda", 0))
        for output in self.session.get_outputs():
            binding.bind_output(output.name, "cuda", 0)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]
