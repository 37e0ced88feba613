"""Export of a tiny trained run: folder contents, manifest, parity gate (passing and failing), CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from export import phrase as phrase_export
from export.__main__ import main as export_main
from export.parity import ParityError, ParityGate
from inference.backend.manifest import sha256_file
from tests.conftest import ROOT


def test_export_writes_everything_inference_needs_and_nothing_else(phrase_exported):
    run_dir, model_dir = phrase_exported
    manifest = json.loads((model_dir / "manifest.json").read_text())
    expected = {"tokenizer.json", "template.json", "cpc_vocab.json", "manifest.json", "README.md"} | {
        f"model.fold{k}{suffix}.onnx" for k in (0, 1) for suffix in ("", ".int8", ".fp16")}
    assert {p.name for p in model_dir.iterdir()} == expected
    assert not (model_dir.parent / ".model.partial").exists()
    assert manifest["format_version"] == 2 and manifest["kind"] == "phrase-scorer"
    card = (model_dir / "README.md").read_text()  # the model card, with the Hub's metadata and the run's evidence
    assert card.startswith("---\nlibrary_name: patent-similarity\nlicense: apache-2.0\n")
    assert f"out-of-fold Pearson of the training run: {manifest['training']['oof_pearson']:.4f}" in card
    assert "| fold0/fp32 | pearson |" in card and "## Intended use" in card and "`epochs`: `1`" in card
    assert manifest["folds"] == [0, 1] and manifest["max_length"] == 48
    assert manifest["variants"]["int8"] == ["model.fold0.int8.onnx", "model.fold1.int8.onnx"]
    assert manifest["inputs"] == ["input_ids", "attention_mask", "token_type_ids", "span_ids", "section_ids", "class_ids"]
    assert manifest["layout"] == "multi"
    assert manifest["training"]["oof_pearson"] == json.loads((run_dir / "metrics.json").read_text())["oof_pearson"]
    assert manifest["exporter"]["versions"]["torch"].startswith("2.")
    for name, info in manifest["files"].items():
        assert sha256_file(model_dir / name) == info["sha256"], name
    checks = {c["name"]: c for c in manifest["parity"]["checks"]}
    assert set(checks) == {f"fold{k}/{v}" for k in (0, 1) for v in ("fp32", "int8", "fp16")}
    assert all(c["passed"] for c in checks.values())
    assert checks["fold0/fp32"]["max_abs_diff"] <= 1e-4


def test_graph_has_dynamic_batch_and_sequence_axes(phrase_exported):
    _, model_dir = phrase_exported
    graph = onnx.load(str(model_dir / "model.fold0.onnx")).graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert all(isinstance(d, str) for shape in dims.values() for d in shape), dims
    assert len(dims["input_ids"]) == 2 and len(dims["section_ids"]) == 1
    assert [o.name for o in graph.output] == ["score"]


def head_weight(path: Path) -> str:
    """The initializer the head's Linear multiplies by (dynamo may have renamed it into a transposed constant)."""
    from export.variants import module_scope

    model = onnx.load(str(path))
    return next(n.input[1] for n in model.graph.node
                if n.op_type in ("MatMul", "Gemm") and "matcher.head.latent" in f"{module_scope(n)} {n.input[1]}")


def perturb_weights(path: Path, names: tuple[str, ...] = (), factor: float = 1.5) -> None:
    """Scale float initializers in place: the ones named, or every large one when none are named."""
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        if array.dtype == np.float32 and (init.name in names or (not names and array.size > 1000)):
            init.CopyFrom(numpy_helper.from_array((array * factor).astype(np.float32), init.name))
    onnx.save(model, str(path))


def test_legacy_exporter_single_fold(phrase_exported, tmp_path):
    run_dir, _ = phrase_exported
    out = tmp_path / "legacy"
    assert export_main(["--run", str(run_dir), "--out", str(out), "--fold", "1", "--exporter", "legacy",
                        "--no-int8", "--no-fp16", "--opset", "17"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["variants"] == {"fp32": ["model.onnx"]} and manifest["folds"] == [1]
    assert manifest["parity"]["checks"][0]["max_abs_diff"] <= 1e-4


def test_parity_gate_rejects_a_corrupted_fp32_graph(phrase_exported, tmp_path, monkeypatch, capsys):
    run_dir, _ = phrase_exported
    real = phrase_export.export_graph

    def export_then_corrupt(*args, **kwargs):
        path = real(*args, **kwargs)
        perturb_weights(path)
        return path

    monkeypatch.setattr(phrase_export, "export_graph", export_then_corrupt)
    out = tmp_path / "bad"
    with pytest.raises(SystemExit) as err:
        export_main(["--run", str(run_dir), "--out", str(out), "--fold", "0", "--exporter", "legacy",
                     "--no-int8", "--no-fp16", "--opset", "17"])
    message = str(err.value.code)
    assert "parity gate failed for fold0/fp32" in message and "max |diff| vs PyTorch" in message
    assert not out.exists()  # nothing half-valid where a user would load it
    assert (tmp_path / ".bad.partial" / "model.onnx").exists()  # kept for inspection


def test_an_int8_graph_that_loses_pearson_is_left_out(phrase_exported, tmp_path, monkeypatch, caplog):
    """The export still succeeds with fp32 (and fp16); the int8 files are gone from the folder and the
    manifest's variants, and its parity check says failed and dropped, with the numbers."""
    run_dir, _ = phrase_exported

    def flat_int8(src, dst, isa="avx512_vnni", **options):
        # a "quantised" graph whose head ignores its input: constant scores, Pearson undefined -> lost
        Path(dst).write_bytes(Path(src).read_bytes())
        perturb_weights(Path(dst), (head_weight(Path(dst)),), factor=0.0)
        return Path(dst)

    monkeypatch.setattr(phrase_export, "quantize_int8", flat_int8)
    out = tmp_path / "m"
    with caplog.at_level("WARNING"):
        export_main(["--run", str(run_dir), "--out", str(out), "--no-fp16"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["variants"] == {"fp32": ["model.fold0.onnx", "model.fold1.onnx"]}
    assert not list(out.glob("*int8*")) and not any("int8" in name for name in manifest["files"])
    checks = {c["name"]: c for c in manifest["parity"]["checks"]}
    assert checks["fold0/int8"]["dropped"] and not checks["fold0/int8"]["passed"] and checks["fold0/int8"]["loss"] > 0.005
    assert checks["fold1/int8"]["dropped"] and not checks["fold0/fp32"]["dropped"]
    assert "int8 graph is not shipped" in caplog.text


def test_int8_falls_back_to_fp32_ffn_down_projections_when_the_gate_says_so(phrase_exported, tmp_path, monkeypatch):
    """Every encoder MatMul int8 is tried first; a Pearson loss over the gate retries with the FFN
    down-projections in fp32, and the manifest says which one shipped."""
    run_dir, _ = phrase_exported
    tried = []

    def int8_that_hurts_unless_ffn_fp32(src, dst, isa="avx512_vnni", ffn_down_fp32=True):
        tried.append(ffn_down_fp32)
        Path(dst).write_bytes(Path(src).read_bytes())
        if not ffn_down_fp32:
            perturb_weights(Path(dst), (head_weight(Path(dst)),), factor=0.0)
        return Path(dst)

    monkeypatch.setattr(phrase_export, "quantize_int8", int8_that_hurts_unless_ffn_fp32)
    export_main(["--run", str(run_dir), "--out", str(tmp_path / "m"), "--fold", "0", "--no-fp16"])
    assert tried == [False, True]
    checks = json.loads((tmp_path / "m" / "manifest.json").read_text())["parity"]["checks"]
    assert [c["note"] for c in checks if c["name"] == "fold0/int8"] == ["FFN down-projections kept fp32"]


def test_the_int8_gate_scores_one_sequence_per_pass_as_the_scorer_does(phrase_exported, tmp_path, monkeypatch):
    run_dir, _ = phrase_exported
    real, calls = phrase_export.onnx_scores, []

    def recording(path, inputs, pad_id, batch_size):
        calls.append((Path(path).name, batch_size))
        return real(path, inputs, pad_id, batch_size)

    monkeypatch.setattr(phrase_export, "onnx_scores", recording)
    export_main(["--run", str(run_dir), "--out", str(tmp_path / "m"), "--fold", "0", "--no-fp16"])
    assert {b for name, b in calls if "int8" in name} == {1} and {b for name, b in calls if "int8" not in name} == {64}


def test_fused_graph_has_every_layer_fused(phrase_exported):
    """TorchScript export + onnxruntime's optimizer: each layer's attention, both layer norms and the GELU
    fused (the tiny BERT has 2 layers), recorded in the manifest; the int8 graph runs QAttention."""
    import onnx

    _, model_dir = phrase_exported
    manifest = json.loads((model_dir / "manifest.json").read_text())
    for fused in manifest["fused_operators"].values():
        assert fused["Attention"] == 2 and fused["SkipLayerNormalization"] == 4 and fused["BiasGelu"] == 2
    ops = {n.op_type for n in onnx.load(str(model_dir / manifest["variants"]["int8"][0])).graph.node}
    assert "QAttention" in ops and "MatMulInteger" in ops


def test_gate_arithmetic():
    labels = np.linspace(0, 1, 50)
    gate = ParityGate("pearson", max_abs_diff=1e-4, max_loss=0.005)
    assert gate.check_fp32("fold0/fp32", labels, labels + 5e-5, labels).passed
    noisy = labels + np.random.default_rng(0).normal(0, 0.3, 50)
    check = gate.check_variant("fold0/int8", labels, labels, noisy)
    assert not check.passed and check.loss > 0.005 and check.variant == "int8"
    with pytest.raises(ParityError, match="int8.*pearson loss 0.005"):
        gate.raise_if_failed("test")
    assert gate.drop_failed_variants() == ["int8"]
    gate.raise_if_failed("test")  # a dropped variant is no longer a failure
    assert not gate.check_fp32("fold1/fp32", labels, labels + 2e-4, labels).passed
    assert gate.drop_failed_variants() == ["int8"]  # fp32 is never dropped ...
    with pytest.raises(ParityError, match="fold1/fp32"):  # ... its failure stops the export
        gate.raise_if_failed("test")


def test_export_refuses_to_overwrite_and_unknown_runs(phrase_exported, tmp_path):
    run_dir, model_dir = phrase_exported
    with pytest.raises(SystemExit, match="already exists; pass --force"):
        export_main(["--run", str(run_dir), "--out", str(model_dir)])
    (tmp_path / "notarun").mkdir()
    with pytest.raises(SystemExit, match="not a training run this tool can export"):
        export_main(["--run", str(tmp_path / "notarun"), "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="fold 7 is not trained"):
        export_main(["--run", str(run_dir), "--out", str(tmp_path / "y"), "--fold", "7"])


def test_export_help_lists_every_option():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "export", "--help"], capture_output=True, text=True, env=env,
                         cwd=ROOT, check=True).stdout
    for option in ("--run", "--out", "--fold", "--opset", "--no-int8", "--no-fp16", "--exporter", "--force",
                   "--int8-isa", "--max-abs-diff", "--max-pearson-loss", "--val-rows", "--batch-size", "--no-fuse"):
        assert option in out, option


def test_int8_keeps_heads_and_pooling_in_fp32_and_ffn_down_projections_when_asked(phrase_exported):
    import onnx

    from export.variants import fp32_nodes, module_scope

    _, model_dir = phrase_exported
    fp32 = onnx.load(str(model_dir / "model.fold0.onnx"))
    producers = {out: node.op_type for node in fp32.graph.node for out in node.output}
    by_name = {node.name: node for node in fp32.graph.node}
    conservative, full = fp32_nodes(fp32), fp32_nodes(fp32, ffn_down_fp32=False)
    ffn_down = [n for n in conservative if n in by_name and producers.get(by_name[n].input[0]) in ("Gelu", "BiasGelu")]
    head = [n for n in full if n in by_name and "head." in module_scope(by_name[n])]
    assert len(ffn_down) == 2 and len(head) == 1  # the tiny BERT has 2 layers
    assert set(full) == set(conservative) - set(ffn_down)
    int8 = onnx.load(str(model_dir / "model.fold0.int8.onnx"))
    integer = [n.name for n in int8.graph.node if n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul", "QAttention")]
    assert integer and not [i for i in integer for k in full if i.startswith(k)]  # the excluded nodes stay float
    assert any("cpc" in n and by_name[n].op_type == "Gather" for n in full if n in by_name)  # CPC tables too


def test_an_export_interrupted_between_variants_leaves_no_half_model_and_reruns_cleanly(phrase_exported, tmp_path,
                                                                                      monkeypatch):
    """Fault injection: a crash after the fp32 and int8 graphs, before fp16. The target folder never
    looks complete (the files sit in .NAME.partial), and the rerun gives the same graphs."""
    run_dir, _ = phrase_exported
    out = tmp_path / "m"

    def crash(src, dst):
        raise KeyboardInterrupt("simulated crash before the fp16 graph")

    real = phrase_export.convert_fp16
    monkeypatch.setattr(phrase_export, "convert_fp16", crash)
    with pytest.raises(KeyboardInterrupt):
        export_main(["--run", str(run_dir), "--out", str(out), "--fold", "0"])
    assert not out.exists() and (tmp_path / ".m.partial" / "model.int8.onnx").is_file()
    monkeypatch.setattr(phrase_export, "convert_fp16", real)
    assert export_main(["--run", str(run_dir), "--out", str(out), "--fold", "0"]) == 0
    assert not (tmp_path / ".m.partial").exists()
    again = tmp_path / "again"
    assert export_main(["--run", str(run_dir), "--out", str(again), "--fold", "0"]) == 0
    for name in ("model.onnx", "model.int8.onnx", "model.fp16.onnx"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name


@pytest.mark.parametrize("kind", ["phrase-scorer", "embedder"])
def test_every_export_carries_a_model_card_the_hub_can_read(phrase_exported, embedder_exported, kind):
    """README.md of each exported folder: YAML metadata the Hub parses (licence, pipeline, tags; datasets for
    the phrase scorer) and the sections a user looks for, with the run's own evidence in them."""
    import yaml

    folder = phrase_exported[1] if kind == "phrase-scorer" else embedder_exported[0]
    card = (folder / "README.md").read_text()
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["license"] == "apache-2.0" and meta["library_name"] == "patent-similarity"
    assert meta["pipeline_tag"] == ("sentence-similarity" if kind == "phrase-scorer" else "feature-extraction")
    assert kind in meta["tags"] and "onnx" in meta["tags"]
    if kind == "phrase-scorer":
        assert meta["datasets"] == ["us-patent-phrase-to-phrase-matching"]
    for heading in ("## Intended use", "## How to use", "## Data", "## Training", "## Metrics", "## Licence"):
        assert heading in body
    assert "| fp32 |" in body or "/fp32 |" in body  # the parity gate's rows
    assert "README.md" not in json.loads((folder / "manifest.json").read_text())["files"]
