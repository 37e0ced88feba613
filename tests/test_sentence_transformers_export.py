"""An embedder run exported for sentence-transformers loads there (PyTorch and, where optimum is
installed, the ONNX backend) and embeds like the project's own encoder."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

TEXTS = ["absorbent article for pets", "A stent with a drug coating.", "knee", "catheter balloon " * 40]


@pytest.fixture(scope="module")
def st_folder(tmp_path_factory, embedder_run):
    out = tmp_path_factory.mktemp("st") / "model"
    res = subprocess.run([sys.executable, "-m", "export", "--run", str(embedder_run[0]), "--format",
                          "sentence-transformers", "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return out


def _ours(embedder_exported, texts):
    from inference.retrieval.encoder import EmbedderModel

    return EmbedderModel.load(embedder_exported[0]).encode_docs(texts)


def test_the_folder_loads_in_sentence_transformers_and_embeds_like_ours(st_folder, embedder_exported):
    st = pytest.importorskip("sentence_transformers")
    assert (st_folder / "onnx" / "model.onnx").is_file() and not (st_folder / "trainable_state.pt").exists()
    model = st.SentenceTransformer(str(st_folder), device="cpu")
    got = model.encode(TEXTS, convert_to_numpy=True)
    assert got.shape == (len(TEXTS), 32)
    assert np.abs(got - _ours(embedder_exported, TEXTS)).max() < 1e-4


def test_the_onnx_backend_embeds_like_ours(st_folder, embedder_exported):
    st = pytest.importorskip("sentence_transformers")
    pytest.importorskip("optimum.onnxruntime", reason="optimum-onnx (transformers < 4.58): CI's 4.57 job runs this")
    model = st.SentenceTransformer(str(st_folder), device="cpu", backend="onnx")
    got = model.encode(TEXTS, convert_to_numpy=True)
    assert np.abs(got - _ours(embedder_exported, TEXTS)).max() < 1e-4


def test_a_phrase_run_is_refused_with_the_reason(tmp_path, tiny_config):
    from solution.phrase.train import run

    cfg = tiny_config(epochs=1)
    run(cfg)
    res = subprocess.run([sys.executable, "-m", "export", "--run", cfg.out, "--format", "sentence-transformers",
                          "--out", str(tmp_path / "st")], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode != 0 and "exports embedder runs" in res.stderr and "is a phrase run" in res.stderr
    assert not (tmp_path / "st").exists()
