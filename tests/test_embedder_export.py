"""Embedder export: parity gate and manifest."""

from __future__ import annotations


def test_export_parity_and_manifest(embedder_exported):
    out, manifest = embedder_exported
    assert manifest["kind"] == "embedder" and manifest["gates"]["fp32_max_abs_diff"] <= 1e-4
    assert {"model.onnx", "tokenizer.json"} <= set(manifest["files"])
