"""The runtime choice (inference/backend/runtime.py): forced choices honoured or refused, "auto" timed once
per machine and cached, OpenVINO faked where it is missing and run for real where it is installed."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from inference import PhraseScorer
from inference.backend import openvino_runner, runtime
from inference.backend.openvino_runner import RuntimeMissingError
from inference.backend.runtime import Engine

REAL_PRECISIONS = openvino_runner.cpu_precisions  # before conftest's autouse fixture hides bf16
needs_openvino = pytest.mark.skipif(not openvino_runner.openvino_installed(), reason="openvino is not installed")


@pytest.fixture()
def fake_openvino(monkeypatch):
    """OpenVINO with native bf16, played by onnxruntime's fp32 session under another provider name: the
    race and the cache are tested on any machine, OpenVINO installed or not."""
    monkeypatch.setattr(openvino_runner, "cpu_precisions", lambda: {"fp32", "bf16"})
    monkeypatch.setattr(openvino_runner, "openvino_installed", lambda: True)
    real_open = Engine.open

    def open_engine(self, path, device, threads):
        runner = real_open(Engine("onnxruntime", "fp32"), path, device, threads) if self.runtime == "openvino" \
            else real_open(self, path, device, threads)
        runner.label = f"{self}"
        return runner

    monkeypatch.setattr(Engine, "open", open_engine)


def rigged_clock(monkeypatch, winner: str) -> list[str]:
    """Make ``winner``'s runtime the fastest on the probe; returns the engines the probe timed."""
    timed: list[str] = []

    def time_feeds(runner, feeds, repeats=2):
        assert feeds, "the probe must run real batches"
        timed.append(runner.label)
        return 0.1 if runner.label.startswith(winner) else 1.0

    monkeypatch.setattr(runtime, "time_feeds", time_feeds)
    return timed


@pytest.mark.parametrize("winner", ["openvino", "onnxruntime"])
def test_auto_times_onnxruntime_against_openvino_bf16_and_keeps_the_faster(phrase_exported, fake_openvino,
                                                                           monkeypatch, winner):
    timed = rigged_clock(monkeypatch, winner)
    scorer = PhraseScorer.load(phrase_exported[1], device="cpu")
    assert sorted(timed) == ["onnxruntime int8", "openvino bf16"]
    expected = "openvino bf16" if winner == "openvino" else "onnxruntime int8"
    assert str(scorer.engine) == expected and all(r.label == expected for r in scorer.runners)
    assert scorer.batch_size == 1 if winner == "onnxruntime" else scorer.batch_size == 16


def test_the_measured_choice_is_cached_per_machine_and_graph(phrase_exported, fake_openvino, monkeypatch):
    timed = rigged_clock(monkeypatch, "openvino")
    PhraseScorer.load(phrase_exported[1], device="cpu")
    assert len(timed) == 2
    again = PhraseScorer.load(phrase_exported[1], device="cpu")
    assert len(timed) == 2 and again.runtime == "openvino"  # read back, not timed again
    PhraseScorer.load(phrase_exported[1], device="cpu", threads=1)  # another thread count is another machine
    assert len(timed) == 4


def test_a_forced_runtime_or_variant_is_never_raced(phrase_exported, fake_openvino, monkeypatch):
    timed = rigged_clock(monkeypatch, "openvino")
    assert str(PhraseScorer.load(phrase_exported[1], device="cpu", runtime="onnxruntime").engine) == "onnxruntime int8"
    assert str(PhraseScorer.load(phrase_exported[1], device="cpu", variant="fp32").engine) == "onnxruntime fp32"
    assert str(PhraseScorer.load(phrase_exported[1], device="cpu", variant="bf16").engine) == "openvino bf16"
    assert str(PhraseScorer.load(phrase_exported[1], device="cpu", runtime="openvino").engine) == "openvino bf16"
    assert timed == []


def test_cuda_is_onnxruntimes(phrase_exported, fake_openvino, cuda_that_falls_back, monkeypatch, caplog):
    """device=auto with CUDA offered asks onnxruntime for fp16; the CUDA fallback to CPU then races the CPU engines."""
    timed = rigged_clock(monkeypatch, "openvino")
    scorer = PhraseScorer.load(phrase_exported[1], device="auto")
    assert "CUDA is not usable" in caplog.text and str(scorer.engine) == "openvino bf16" and len(timed) == 2
    with pytest.raises(Exception, match="runtime 'openvino' runs on the CPU"):
        PhraseScorer.load(phrase_exported[1], device="cuda", runtime="openvino")


@pytest.mark.parametrize(("runtime_name", "variant", "message"), [
    ("onnxruntime", "bf16", "runs on OpenVINO only"),
    ("openvino", "int8", "runs variant fp32 or bf16"),
    ("tensorrt", "auto", "expected one of auto, onnxruntime, openvino"),
])
def test_impossible_combinations_are_refused_with_the_reason(phrase_exported, fake_openvino, runtime_name, variant,
                                                             message):
    with pytest.raises(ValueError, match=message):
        PhraseScorer.load(phrase_exported[1], device="cpu", runtime=runtime_name, variant=variant)


def test_openvino_asked_for_but_missing_says_how_to_install(phrase_exported, monkeypatch):
    monkeypatch.setattr(openvino_runner, "openvino_installed", lambda: False)
    with pytest.raises(RuntimeMissingError, match=r"pip install \"\.\[openvino\]\""):
        PhraseScorer.load(phrase_exported[1], device="cpu", runtime="openvino")
    scorer = PhraseScorer.load(phrase_exported[1], device="cpu")  # auto without OpenVINO: onnxruntime, silently
    assert scorer.runtime == "onnxruntime"


def test_cli_json_summary_names_the_runtime(phrase_exported, small_data, tmp_path):
    out = tmp_path / "scores.csv"
    done = subprocess.run([sys.executable, "-m", "inference", "score", "--model", str(phrase_exported[1]), "--input",
                           str(small_data / "uspppm" / "test.csv"), "--output", str(out), "--runtime", "onnxruntime",
                           "--variant", "fp32", "--json"], capture_output=True, text=True, check=True)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["runtime"] == "onnxruntime" and summary["variant"] == "fp32"
    assert summary["providers"] == ["CPUExecutionProvider"] and summary["rows"] == len(out.read_text().splitlines()) - 1


@needs_openvino
def test_openvino_fp32_scores_like_onnxruntime_fp32(phrase_exported, small_data):
    from inference.io import read_pairs

    table = read_pairs(small_data / "uspppm" / "test.csv")
    onnx = PhraseScorer.load(phrase_exported[1], device="cpu", runtime="onnxruntime", variant="fp32")
    ov = PhraseScorer.load(phrase_exported[1], device="cpu", runtime="openvino", variant="fp32")
    assert ov.providers == ["OpenVINO CPU (fp32)"]
    assert np.abs(onnx.score_table(table) - ov.score_table(table)).max() <= 1e-4


@needs_openvino
@pytest.mark.skipif("bf16" not in REAL_PRECISIONS(), reason="this CPU has no native bf16")
def test_openvino_bf16_is_close_to_fp32_and_says_so(phrase_exported, small_data, monkeypatch):
    from inference.io import read_pairs

    monkeypatch.setattr(openvino_runner, "cpu_precisions", REAL_PRECISIONS)
    table = read_pairs(small_data / "uspppm" / "test.csv")
    fp32 = PhraseScorer.load(phrase_exported[1], device="cpu", runtime="onnxruntime", variant="fp32")
    bf16 = PhraseScorer.load(phrase_exported[1], device="cpu", variant="bf16")
    assert bf16.providers == ["OpenVINO CPU (bf16)"]
    difference = np.abs(fp32.score_table(table) - bf16.score_table(table))
    assert 0 < difference.max() <= 0.02  # not bit-equal: bf16 really ran


def test_the_embedder_goes_through_the_same_choice(embedder_exported, patent_corpus, fake_openvino, monkeypatch, tmp_path):
    from inference.retrieval.encoder import EmbedderModel
    from inference.retrieval.index import build_index

    timed = rigged_clock(monkeypatch, "openvino")
    model = EmbedderModel.load(embedder_exported[0])
    assert sorted(timed) == ["onnxruntime fp32", "openvino bf16"] and str(model.engine) == "openvino bf16"
    assert model.queries.runner is model.docs.runner  # one graph serves queries and documents
    info = build_index(embedder_exported[0], patent_corpus, tmp_path / "idx", chunk_size=32, progress=False, bm25=False)
    assert (info["runtime"], info["variant"]) == ("openvino", "bf16") and len(timed) == 2  # the cached choice


@needs_openvino
def test_openvino_embeddings_match_onnxruntimes(embedder_exported):
    from inference.retrieval.encoder import EmbedderModel

    texts = ["a drug-coated balloon catheter", "a shoe sole with air cushions"] * 3
    onnx = EmbedderModel.load(embedder_exported[0], variant="fp32", runtime="onnxruntime")
    ov = EmbedderModel.load(embedder_exported[0], variant="fp32", runtime="openvino")
    assert ov.providers == ["OpenVINO CPU (fp32)"]
    assert np.abs(onnx.encode_docs(texts) - ov.encode_docs(texts)).max() <= 1e-4
