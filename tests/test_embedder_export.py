"""Embedder export: parity gate and manifest."""

from __future__ import annotations


def test_export_parity_and_manifest(embedder_exported):
    out, manifest = embedder_exported
    assert manifest["kind"] == "embedder" and manifest["gates"]["fp32_max_abs_diff"] <= 1e-4
    assert {"model.onnx", "tokenizer.json"} <= set(manifest["files"])


def test_a_failed_export_over_an_existing_folder_keeps_the_old_model(embedder_run, tmp_path, monkeypatch):
    """--force replaces a model folder only once the new one passed its gates (it used to delete first)."""
    import numpy as np
    import pytest

    import export.embedder as embedder_export
    from export.parity import ParityError

    out = tmp_path / "model"
    first = embedder_export.export_embedder(out, run=str(embedder_run[0]), int8=False)
    monkeypatch.setattr(embedder_export, "onnx_embed",
                        lambda path, tok, texts, *a, **k: np.zeros((len(texts), 32), dtype=np.float32))
    with pytest.raises(ParityError):
        embedder_export.export_embedder(out, run=str(embedder_run[0]), int8=False, force=True)
    assert (out / "manifest.json").is_file()
    assert (out / "model.onnx").read_bytes() and first["files"]["model.onnx"]["sha256"]
    from inference.retrieval.encoder import EmbedderModel

    assert EmbedderModel.load(out).graph_sha256 == first["files"]["model.onnx"]["sha256"]  # the old model, intact
