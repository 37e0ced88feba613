"""Embedder export: options, parity gate (one ParityGate, nDCG@10 for variants) and manifest."""

from __future__ import annotations

import json

import pytest

import export.embedder as embedder_export
from export.embedder import EmbedderExportOptions
from export.parity import ParityError


def test_export_parity_and_manifest(embedder_exported):
    out, manifest = embedder_exported
    assert manifest["kind"] == "embedder" and manifest["variants"] == {"fp32": ["model.onnx"]}
    (check,) = manifest["parity"]["checks"]
    assert manifest["parity"]["metric"] == "ndcg@10" and check["name"] == "fp32" and check["max_abs_diff"] <= 1e-4
    assert {"model.onnx", "tokenizer.json"} <= set(manifest["files"])
    assert manifest["options"]["exporter"] == "legacy" and manifest["options"]["int8"] is False


def test_options_take_a_run_or_a_model_not_both():
    with pytest.raises(ValueError, match="one of"):
        EmbedderExportOptions("out")
    with pytest.raises(ValueError, match="one of"):
        EmbedderExportOptions("out", run="runs/a", model="m")


@pytest.mark.parametrize("int8_ndcg, shipped", [(0.797, True), (0.790, False)])
def test_int8_ships_only_within_the_ndcg_gate(embedder_run, tmp_path, monkeypatch, int8_ndcg, shipped):
    """fp32 nDCG@10 0.800: int8 at 0.797 (loss 0.003) ships, at 0.790 (0.010 > 0.005) it is dropped, the
    export still succeeds and the manifest says why."""
    monkeypatch.setattr(embedder_export, "ndcg_pair", lambda *a, **k: (0.800, int8_ndcg, 200))
    out = tmp_path / "m"
    manifest = embedder_export.export_embedder(EmbedderExportOptions(out, run=str(embedder_run[0]), exporter="legacy"))
    assert ("int8" in manifest["variants"]) is shipped and (out / "model.int8.onnx").exists() is shipped
    assert ("model.int8.onnx" in manifest["files"]) is shipped
    int8 = next(c for c in json.loads((out / "manifest.json").read_text())["parity"]["checks"] if c["name"] == "int8")
    assert int8["passed"] is shipped and int8["dropped"] is not shipped
    assert int8["loss"] == pytest.approx(0.800 - int8_ndcg)


def test_a_failed_export_over_an_existing_folder_keeps_the_old_model(embedder_run, tmp_path, monkeypatch):
    """--force replaces a model folder only once the new one passed its gates (it used to delete first)."""
    import numpy as np

    out = tmp_path / "model"
    first = embedder_export.export_embedder(EmbedderExportOptions(out, run=str(embedder_run[0]), int8=False))
    monkeypatch.setattr(embedder_export, "onnx_embed",
                        lambda path, tok, texts, *a, **k: np.zeros((len(texts), 32), dtype=np.float32))
    with pytest.raises(ParityError, match="fp32"):
        embedder_export.export_embedder(EmbedderExportOptions(out, run=str(embedder_run[0]), int8=False, force=True))
    assert (out / "manifest.json").is_file()
    assert (out / "model.onnx").read_bytes() and first["files"]["model.onnx"]["sha256"]
    from inference.retrieval.encoder import EmbedderModel

    assert EmbedderModel.load(out).graph_sha256 == first["files"]["model.onnx"]["sha256"]  # the old model, intact


def test_embedder_folders_pick_variants_like_phrase_scorers(embedder_exported, tmp_path):
    """One variants map and one picker: "auto" falls back to fp32 where int8 was not shipped, an absent
    variant is a clear error, and folders exported before the map (graphs found by file name) still load."""
    import shutil

    from inference.backend.manifest import SELF_HASH, ModelFolderError, self_hash
    from inference.retrieval.encoder import EmbedderModel

    folder = tmp_path / "m"
    shutil.copytree(embedder_exported[0], folder)
    assert EmbedderModel.load(folder, variant="auto").variant == "fp32"
    with pytest.raises(ModelFolderError, match="variant 'int8' was not exported"):
        EmbedderModel.load(folder, variant="int8")
    data = json.loads((folder / "manifest.json").read_text())
    data.pop("variants")
    data[SELF_HASH] = self_hash(data)
    (folder / "manifest.json").write_text(json.dumps(data))
    legacy = EmbedderModel.load(folder, variant="auto")
    assert legacy.variant == "fp32" and legacy.encode_queries(["stent"]).shape == (1, embedder_exported[1]["dim"])
