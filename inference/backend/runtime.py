"""Which runtime runs a model folder's graphs: onnxruntime (CPU, CUDA) or OpenVINO (CPU, optional extra).

An :class:`Engine` is a runtime and a variant: onnxruntime runs the exported ``fp32``/``int8``/``fp16``
graphs; OpenVINO runs the fp32 graph at ``fp32`` or ``bf16`` inference precision (``bf16`` only on CPUs
with it natively). Resolution of ``runtime`` x ``variant`` (:func:`candidate_engines`):

- a forced runtime or variant is honoured or refused with a reason, never swapped for another;
- CUDA (asked for, or offered to ``device="auto"``): onnxruntime;
- CPU with ``runtime="auto"`` and ``variant="auto"``: the model kind's onnxruntime pick (int8 or fp32)
  against OpenVINO bf16 where OpenVINO is installed and the CPU runs bf16 natively. Which is faster
  depends on the CPU and the graph (docs/decisions/runtime-choice.md), so it is timed, not guessed:
  :func:`fastest` times each candidate on a probe batch of
  the model's own inputs and keeps the winner, and the choice is cached per graph, CPU, thread count and
  runtime versions (``$PATENT_SIM_CACHE``, default ``~/.cache/patent-similarity/runtime-choice.json``)
  so the probe runs once per machine.

Example:
    >>> from inference.backend.manifest import Manifest
    >>> m = Manifest(".", {"variants": {"fp32": ["model.onnx"], "int8": ["model.int8.onnx"]}})
    >>> [str(e) for e in candidate_engines(m, "onnxruntime", "auto", "cpu", cpu_preferred="int8")]
    ['onnxruntime int8']
    >>> candidate_engines(m, "auto", "fp32", "cpu", cpu_preferred="int8")[0].graphs(m)
    ['model.onnx']
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from inference.backend import openvino_runner
from inference.backend.cores import usable_cores
from inference.backend.manifest import Manifest
from inference.backend.session import DeviceError, OnnxRunner, wants_cuda
from inference.backend.variants import pick_variant

RUNTIMES = ("auto", "onnxruntime", "openvino")
OPENVINO_VARIANTS = ("fp32", "bf16")
CACHE_ENV = "PATENT_SIM_CACHE"

log = logging.getLogger(__name__)


class Runner(Protocol):
    providers: list[str]
    on_cuda: bool
    input_names: list[str]
    output_dim: int | None

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True)
class Engine:
    """A runtime and the variant it runs."""

    runtime: str  # "onnxruntime" | "openvino"
    variant: str  # "fp32" | "int8" | "fp16" | "bf16" (OpenVINO: the fp32 graph at bf16 precision)

    def __str__(self) -> str:
        return f"{self.runtime} {self.variant}"

    def graphs(self, manifest: Manifest) -> list[str]:
        """The graph files this engine reads, one per fold."""
        return manifest["variants"]["fp32" if self.runtime == "openvino" else self.variant]

    def open(self, path: str | os.PathLike, device: str, threads: int | None) -> Runner:
        if self.runtime == "openvino":
            return openvino_runner.OpenVinoRunner.create(path, self.variant, threads)
        return OnnxRunner.create(path, device, threads)

    def open_first(self, manifest: Manifest, device: str, threads: int | None) -> Runner:
        """The first fold's graph, after checking every graph this engine reads against the manifest."""
        manifest.verify(self.graphs(manifest))
        return self.open(manifest.path(self.graphs(manifest)[0]), device, threads)


class RunsOnEngine:
    """``variant`` and ``runtime`` of a loaded model, read from its ``engine``."""

    engine: Engine

    @property
    def variant(self) -> str:
        return self.engine.variant

    @property
    def runtime(self) -> str:
        return self.engine.runtime


def add_runtime_argument(parser) -> None:
    """``--runtime``, the same for every command that loads a model."""
    parser.add_argument("--runtime", default="auto", choices=RUNTIMES,
                        help="auto: on CPU the faster of onnxruntime and OpenVINO (if installed) for this model, timed "
                             "once per machine and cached; onnxruntime; openvino (CPU; pip install '.[openvino]') "
                             "(default: auto)")


def candidate_engines(manifest: Manifest, runtime: str, variant: str, device: str, cpu_preferred: str) -> list[Engine]:
    """The engines that may run this folder as asked (several only when both runtime and variant are
    "auto" on CPU and OpenVINO can run bf16 here); a forced choice that cannot run is an error."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    if runtime == "openvino" or variant == "bf16":
        return [openvino_engine(runtime, variant, device)]
    onnx = Engine("onnxruntime", pick_variant(manifest, variant, wants_cuda(device), cpu_preferred))
    if runtime == "onnxruntime" or variant != "auto" or wants_cuda(device):
        return [onnx]
    if "bf16" in openvino_runner.cpu_precisions():
        return [onnx, Engine("openvino", "bf16")]
    return [onnx]


def openvino_engine(runtime: str, variant: str, device: str) -> Engine:
    if runtime == "onnxruntime":
        raise ValueError("variant 'bf16' runs on OpenVINO only (runtime 'openvino' or 'auto'); onnxruntime runs "
                         "fp32, int8 and fp16")
    if device == "cuda":
        raise DeviceError("runtime 'openvino' runs on the CPU here; use device 'cpu', or runtime 'onnxruntime' for CUDA")
    if variant not in ("auto", *OPENVINO_VARIANTS):
        raise ValueError(f"runtime 'openvino' runs variant {' or '.join(OPENVINO_VARIANTS)} (the fp32 graph at that "
                         f"precision), not {variant!r}; use runtime 'onnxruntime' for it")
    openvino_runner.require_openvino()
    if variant == "auto":
        variant = "bf16" if "bf16" in openvino_runner.cpu_precisions() else "fp32"
    return Engine("openvino", variant)


def time_feeds(runner: Runner, feeds: Sequence[dict[str, np.ndarray]], repeats: int = 2) -> float:
    """Seconds for one pass over ``feeds``: the best of ``repeats`` after one untimed warm-up pass
    (the warm-up takes the first-call costs: OpenVINO's shape compilation, onnxruntime's allocations)."""
    best = float("inf")
    for attempt in range(repeats + 1):
        start = time.perf_counter()
        for feed in feeds:
            runner.run(feed)
        if attempt:
            best = min(best, time.perf_counter() - start)
    return best


def fastest(engines: Sequence[Engine], manifest: Manifest, device: str, threads: int | None,
            probe_feeds: Callable[[Engine, Runner], Sequence[dict[str, np.ndarray]]]) -> tuple[Engine, Runner]:
    """The engine (and its opened first graph) that runs the probe fastest; one candidate is just opened.
    ``probe_feeds(engine, runner)`` gives the feeds that engine would run for the same probe rows (its own
    sequences per pass)."""
    if len(engines) == 1:
        return engines[0], engines[0].open_first(manifest, device, threads)
    key = choice_key(engines, manifest["files"][manifest["variants"]["fp32"][0]]["sha256"], threads)
    cached = read_choices().get(key)
    for engine in engines:
        if str(engine) == cached:
            log.info("runtime: %s (measured fastest on this machine earlier; cache %s)", engine, choice_file())
            return engine, engine.open_first(manifest, device, threads)
    timings: dict[Engine, float] = {}
    best: tuple[Engine, Runner] | None = None
    for engine in engines:
        runner = engine.open_first(manifest, device, threads)
        timings[engine] = time_feeds(runner, probe_feeds(engine, runner))
        if best is None or timings[engine] < timings[best[0]]:
            best = (engine, runner)
    assert best is not None
    log.info("runtime: %s, the fastest on a probe batch (%s)", best[0],
             ", ".join(f"{e}: {s * 1000:.0f} ms" for e, s in timings.items()))
    remember_choice(key, str(best[0]))
    return best


# ---- the cache of measured choices ----

def choice_file() -> Path:
    root = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "patent-similarity"
    return Path(root) / "runtime-choice.json"


def cpu_identity() -> str:
    """The CPU model and its flags (the things a runtime's speed depends on), from /proc/cpuinfo on Linux."""
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    fields = {key.strip(): value.strip() for key, value in (line.split(":", 1) for line in info.splitlines() if ":" in line)}
    return f"{fields.get('model name', '')} {fields.get('flags', '')}"


def choice_key(engines: Sequence[Engine], graph_sha256: str, threads: int | None) -> str:
    versions = [f"onnxruntime {__import__('onnxruntime').__version__}"]
    if openvino_runner.openvino_installed():
        versions.append(f"openvino {__import__('openvino').__version__}")
    parts = [graph_sha256, cpu_identity(), str(threads or usable_cores()), *versions, *map(str, engines)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def read_choices() -> dict[str, str]:
    try:
        data = json.loads(choice_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remember_choice(key: str, engine: str) -> None:
    from inference.io import atomic_write_text

    choices = read_choices()
    choices[key] = engine
    try:
        atomic_write_text(choice_file(), json.dumps(choices, indent=1, sort_keys=True))
    except OSError as err:  # a read-only home: the probe just runs again next time
        log.debug("could not cache the runtime choice in %s: %s", choice_file(), err)
