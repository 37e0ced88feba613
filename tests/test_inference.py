"""The torch-free scorer against PyTorch, its error handling, the CLI, and a fresh venv without torch."""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

from inference import PhraseScorer
from inference.backend import openvino_runner
from inference.backend import session as session_module
from inference.backend.manifest import ModelFolderError, sha256_file
from inference.backend.session import DeviceError
from inference.backend.tokens import TextEncoder
from inference.io import DataError, read_pairs
from tests.conftest import ROOT, write_csv


@pytest.fixture(scope="session")
def shuffled_test(small_data, tmp_path_factory) -> tuple[Path, list[str]]:
    """The test CSV in reverse order (an order training never saw), and its ids."""
    with open(small_data / "uspppm" / "test.csv", newline="") as f:
        rows = list(csv.DictReader(f))[::-1]
    path = write_csv(tmp_path_factory.mktemp("csv") / "shuffled.csv", rows, ["id", "anchor", "target", "context"])
    return path, [r["id"] for r in rows]


@pytest.fixture(scope="session")
def torch_reference(phrase_exported, shuffled_test) -> np.ndarray:
    from solution.phrase.predict import predict_file

    run_dir, _ = phrase_exported
    ids, scores = predict_file(run_dir, shuffled_test[0], device="cpu")
    assert ids == shuffled_test[1]
    return scores


def test_predict_scores_do_not_depend_on_the_files_row_order(phrase_exported, small_data, shuffled_test,
                                                             torch_reference):
    """solution.predict on the test file as written and reversed (``shuffled_test``): every id the same score."""
    from solution.phrase.predict import predict_file

    ids, scores = predict_file(phrase_exported[0], small_data / "uspppm" / "test.csv", device="cpu")
    reversed_by_id = dict(zip(shuffled_test[1], torch_reference))
    assert np.abs(scores - np.array([reversed_by_id[i] for i in ids])).max() <= 1e-5


def test_predict_precision_overrides_the_runs(phrase_exported, shuffled_test, torch_reference):
    from solution.phrase.predict import predict_file

    _, bf16 = predict_file(phrase_exported[0], shuffled_test[0], device="cpu", precision="bf16")  # the run's: fp32
    assert 0 < np.abs(bf16 - torch_reference).max() < 0.05


def read_scores(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["id"] for r in rows], np.array([float(r["score"]) for r in rows])


@pytest.mark.parametrize("variant, tolerance", [("fp32", 1e-4), ("fp16", 2e-3), ("int8", 0.02)])
def test_onnx_scores_match_pytorch_in_input_order(phrase_exported, shuffled_test, torch_reference, tmp_path, variant, tolerance):
    _, model_dir = phrase_exported
    scorer = PhraseScorer.load(model_dir, device="cpu", variant=variant)
    out = tmp_path / "sub" / "scores.csv"
    scores = scorer.score_csv(shuffled_test[0], out)
    ids, written = read_scores(out)
    assert ids == shuffled_test[1]
    assert np.abs(written - scores).max() < 1e-6  # written with 6 decimals
    assert np.abs(scores - torch_reference).max() < tolerance
    assert len(scorer.runners) == 2  # both folds, averaged like solution.predict


def test_cpu_defaults_and_provider_reporting(phrase_exported):
    _, model_dir = phrase_exported
    scorer = PhraseScorer.load(model_dir)  # auto: no CUDA here -> CPU, int8
    assert scorer.providers == ["CPUExecutionProvider"] and scorer.variant == "int8" and scorer.batch_size == 1
    assert PhraseScorer.load(model_dir, variant="fp32").batch_size == 16  # multi layout: 64 / 4
    scores = scorer.score([("abatement", "abatement of pollution", "A47"), ("abatement", "act of abating", "a47")])
    assert scores.shape == (2,) and scores.dtype == np.float32 and ((scores >= 0) & (scores <= 1)).all()


def test_pairs_are_grouped_like_a_csv(phrase_exported, small_data):
    """score(pairs) builds the same inputs as score_csv: same grouping, same scores."""
    _, model_dir = phrase_exported
    scorer = PhraseScorer.load(model_dir, device="cpu", variant="fp32")
    table = read_pairs(small_data / "uspppm" / "test.csv")
    pairs = list(zip(table.columns["anchor"], table.columns["target"], table.columns["context"]))
    assert np.abs(scorer.score(pairs) - scorer.score_table(table)).max() < 1e-6


def test_cuda_without_a_cuda_provider_is_a_clear_error(phrase_exported):
    if session_module.cuda_offered():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(DeviceError, match="device='cuda'.*no CUDA provider.*onnxruntime-gpu"):
        PhraseScorer.load(phrase_exported[1], device="cuda")


def test_cuda_that_silently_falls_back_is_caught(phrase_exported, cuda_that_falls_back, caplog):
    """onnxruntime offers CUDA but the session ends up on CPU: cuda -> error, auto -> one warning, CPU variant."""
    with pytest.raises(DeviceError, match="fell back to"):
        PhraseScorer.load(phrase_exported[1], device="cuda")
    with caplog.at_level(logging.WARNING):
        scorer = PhraseScorer.load(phrase_exported[1], device="auto")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "CUDA is not usable" in warnings[0].getMessage()
    assert scorer.variant == "int8" and scorer.providers == ["CPUExecutionProvider"] and len(scorer.runners) == 2


def copy_model(model_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    return target


def test_modified_or_incomplete_model_folder_is_refused(phrase_exported, tmp_path):
    folder = copy_model(phrase_exported[1], tmp_path)
    with open(folder / "model.fold1.int8.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelFolderError, match=r"model.fold1.int8.onnx: sha256 .* does not match the manifest"):
        PhraseScorer.load(folder, device="cpu")
    PhraseScorer.load(folder, device="cpu", variant="fp32")  # only the files used are checked
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelFolderError, match="tokenizer.json: missing"):
        PhraseScorer.load(folder, device="cpu", variant="fp32")
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "kind": "embedder"}))
    with pytest.raises(ModelFolderError, match="holds a 'embedder' model, expected 'phrase-scorer'"):
        PhraseScorer.load(folder)
    (folder / "manifest.json").unlink()
    with pytest.raises(ModelFolderError, match="no manifest.json"):
        PhraseScorer.load(folder)


def test_bad_input_same_errors_and_fallbacks_as_training(phrase_exported, tmp_path, caplog):
    scorer = PhraseScorer.load(phrase_exported[1], device="cpu", variant="fp32")
    missing = tmp_path / "missing.csv"
    missing.write_text("id,anchor,context\n1,a,A47\n")
    with pytest.raises(DataError, match=r"missing column\(s\) 'target'"):
        scorer.score_csv(missing, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()
    with pytest.raises(DataError, match="line 2, column 'target': empty"):
        scorer.score([("abatement", "x", "A47"), ("abatement", " ", "A47")])
    with pytest.raises(DataError, match="line 1, column 'context'.*'Z'"):
        scorer.score([("abatement", "x", "Z01")])
    with caplog.at_level(logging.WARNING):
        scores = scorer.score([("abatement", "x", "A47"), ("abatement", "x", "A99"), ("abatement", "x", "B99")])
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 1 and "2 row(s) have a context class the model was not trained on" in messages[0]
    assert np.isfinite(scores).all() and len(scores) == 3


def test_overlong_text_is_truncated_with_a_count(phrase_exported, caplog):
    scorer = PhraseScorer.load(phrase_exported[1], device="cpu", variant="fp32")
    long_target = " ".join(["pollution"] * 200)
    with caplog.at_level(logging.WARNING):
        scores = scorer.score([("abatement", long_target, "A47"), ("opc drum", "inorganic photoconductor drum", "G03")])
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 1 and "1 of 2" in messages[0] and "longer than" in messages[0]
    assert "max_length=48" in messages[0]
    assert len(scores) == 2


def test_tokenizer_json_gives_the_training_tokenizer_ids(phrase_exported, small_data):
    from transformers import AutoTokenizer

    from inference.phrase.inputs import TableContexts
    from solution.phrase.data import preprocessor

    run_dir, model_dir = phrase_exported
    scorer = PhraseScorer.load(model_dir, device="cpu", variant="fp32")
    texts = []
    for path in (small_data / "uspppm" / "test.csv", run_dir / "oof.csv"):
        table = read_pairs(path)
        texts += scorer.preprocess.pair_texts(table, TableContexts.of(table, scorer.preprocess.vocab).titles)
        # the multi layout (the default) builds the same sequences from tokenizer.json as training does
        training = preprocessor(AutoTokenizer.from_pretrained(run_dir / "tokenizer"), scorer.preprocess.template,
                                scorer.preprocess.vocab, 48)(table)
        ours = scorer.preprocess(table)
        assert (ours.ids, ours.spans, ours.rows) == (training.ids, training.spans, training.rows)
    texts.append("abatement [SEP] " + " ".join(["pollution"] * 200))  # truncated
    hf = AutoTokenizer.from_pretrained(run_dir / "tokenizer")(texts, truncation=True, max_length=48)
    ours = TextEncoder.load(model_dir / "tokenizer.json", max_length=48).encode(texts)
    assert ours.ids == [list(x) for x in hf["input_ids"]]
    assert ours.type_ids == [list(x) for x in hf["token_type_ids"]]
    assert ours.n_truncated >= 1


SCRIPT = """
import runpy, sys
model, source, target = sys.argv[1:4]
sys.argv = ["inference", "score", "--model", model, "--input", source, "--output", target]
try:
    runpy.run_module("inference", run_name="__main__")
except SystemExit as err:
    if err.code not in (None, 0):
        raise
from inference import PhraseScorer
PhraseScorer.load(model).score([("abatement", "act of abating", "A47")])
leaked = sorted(m for m in ("torch", "transformers") if m in sys.modules)
assert not leaked, f"imported {leaked}"
print("no torch, no transformers")
"""


def test_scoring_imports_neither_torch_nor_transformers(phrase_exported, shuffled_test, torch_reference, tmp_path):
    out = tmp_path / "cli.csv"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(phrase_exported[1]), str(shuffled_test[0]), str(out)],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no torch, no transformers" in proc.stdout and "wrote 36 scores" in proc.stdout
    ids, scores = read_scores(out)
    assert ids == shuffled_test[1] and np.abs(scores - torch_reference).max() < 0.02


def test_cli_help_explains_every_option():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    top = subprocess.run([sys.executable, "-m", "inference", "--help"], capture_output=True, text=True, env=env,
                         cwd=ROOT, check=True).stdout
    assert "score" in top and "COMMAND --help" in top
    sub = subprocess.run([sys.executable, "-m", "inference", "score", "--help"], capture_output=True, text=True,
                         env=env, cwd=ROOT, check=True).stdout
    for option in ("--model", "--input", "--output", "--device", "--variant", "--batch-size", "--threads"):
        assert option in sub, option


def test_cli_data_error_is_a_clear_message(phrase_exported, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,anchor,target,context\n1,a,,A47\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "inference", "score", "--model", str(phrase_exported[1]), "--input", str(bad),
                           "--output", str(tmp_path / "o.csv")], capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode != 0 and "data error" in proc.stderr and "line 2, column 'target'" in proc.stderr


@pytest.mark.slow
def test_fresh_venv_without_torch_scores_a_csv(phrase_exported, shuffled_test, torch_reference, tmp_path):
    """pip-install the package (no extras) into a new venv: numpy + tokenizers + onnxruntime, no torch."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # Build from a copy holding just the packaging files and inference/: the wheel is the inference
    # library alone, and the build leaves no build/ or *.egg-info in the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
        else:
            (src / name).write_text("")
    shutil.copytree(ROOT / "inference", src / "inference", ignore=shutil.ignore_patterns("__pycache__"))
    # with its declared dependencies: the base install must bring numpy, tokenizers, onnxruntime and no torch
    subprocess.run(pip + [f"{src}[cpu]"], check=True, timeout=600)
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    assert subprocess.run([python, "-c", "import torch"], capture_output=True, env=clean_env).returncode != 0
    out = tmp_path / "venv.csv"
    proc = subprocess.run([python, "-c", SCRIPT, str(phrase_exported[1]), str(shuffled_test[0]), str(out)],
                          capture_output=True, text=True, env=clean_env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ids, scores = read_scores(out)
    assert ids == shuffled_test[1] and np.abs(scores - torch_reference).max() < 0.02
    command = str(env_dir / "bin" / "patent-sim")  # the console command, as pip installed it
    proc = subprocess.run([command, "score", "--model", str(phrase_exported[1]), "--input", str(shuffled_test[0]),
                           "--output", str(tmp_path / "console.csv"), "--quiet"], capture_output=True, text=True,
                          env=clean_env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_scores(tmp_path / "console.csv")[0] == shuffled_test[1]
    proc = subprocess.run([command, "train", "--help"], capture_output=True, text=True, env=clean_env, cwd=tmp_path)
    assert proc.returncode == 1 and "which this install lacks; install the 'train' extra" in proc.stderr


def rewrite_manifest(folder: Path, change, rehash: bool = True) -> None:
    """Edit a copied model folder's manifest; ``rehash`` recomputes its self-hash (a careless exporter,
    not an edit)."""
    from inference.backend.manifest import SELF_HASH, self_hash

    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    if rehash:
        data[SELF_HASH] = self_hash(data)
    path.write_text(json.dumps(data))


def test_an_edited_manifest_is_refused(phrase_exported, tmp_path):
    folder = copy_model(phrase_exported[1], tmp_path)
    rewrite_manifest(folder, lambda d: d.update(max_length=16), rehash=False)  # would silently cut every input
    with pytest.raises(ModelFolderError, match="was edited after export"):
        PhraseScorer.load(folder, device="cpu")


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(tokenizer="../outside.json"), "points outside"),
    (lambda d: d.update(tokenizer="/etc/passwd"), "is not a file name inside the folder"),
    (lambda d: d.update(max_length="abc"), "field 'max_length' is 'abc', expected an integer >= 8"),
    (lambda d: d.pop("pad_id"), "field 'pad_id' is missing"),
    (lambda d: d.update(folds=[0]), "1 folds but 2 fp32 graphs"),
])
def test_manifest_fields_and_file_entries_are_checked(phrase_exported, tmp_path, change, message):
    folder = copy_model(phrase_exported[1], tmp_path)
    rewrite_manifest(folder, change)
    with pytest.raises(ModelFolderError, match=message):
        PhraseScorer.load(folder, device="cpu", variant="fp32")


def test_a_format_1_manifest_still_loads_with_a_warning(phrase_exported, tmp_path, caplog):
    from inference.backend.manifest import SELF_HASH

    folder = copy_model(phrase_exported[1], tmp_path)
    rewrite_manifest(folder, lambda d: (d.pop(SELF_HASH), d.update(format_version=1)), rehash=False)
    with caplog.at_level(logging.WARNING):
        scorer = PhraseScorer.load(folder, device="cpu", variant="fp32")
    assert "no self-hash" in caplog.text and len(scorer.runners) == 2


REAL_PRECISIONS = openvino_runner.cpu_precisions  # conftest hides bf16 from "auto"; these tests ask for it
OPENVINO_MISSING = pytest.mark.skipif(not openvino_runner.openvino_installed(), reason="openvino is not installed")
NO_NATIVE_BF16 = pytest.mark.skipif("bf16" not in openvino_runner.cpu_precisions(), reason="no native bf16 here")


@pytest.mark.parametrize(("runtime", "variant"), [
    ("onnxruntime", "int8"), ("onnxruntime", "fp32"),
    pytest.param("openvino", "fp32", marks=OPENVINO_MISSING),
    pytest.param("openvino", "bf16", marks=[OPENVINO_MISSING, NO_NATIVE_BF16]),
])
def test_a_rows_score_does_not_depend_on_the_other_rows_of_the_file(phrase_exported, small_data, runtime, variant,
                                                                    caplog, monkeypatch):
    """Per-row determinism, for every runtime x variant that ships: the same anchor+context groups score the
    same whether the file holds only them or many other groups too (other batch mates, other padding),
    whatever batch size is asked, and whatever the order of the file's rows (reversed, shuffled)."""
    from inference.io import read_pairs

    monkeypatch.setattr(openvino_runner, "cpu_precisions", REAL_PRECISIONS)

    table = read_pairs(small_data / "uspppm" / "test.csv")
    groups: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(table.columns["anchor"], table.columns["context"])):
        groups.setdefault(key, []).append(i)
    few = sorted(i for rows in list(groups.values())[:2] for i in rows)
    scorer = PhraseScorer.load(phrase_exported[1], device="cpu", variant=variant, runtime=runtime)
    alone = scorer.score_table(table.subset(few))
    with caplog.at_level(logging.WARNING):
        crowded = PhraseScorer.load(phrase_exported[1], device="cpu", variant=variant, batch_size=16, runtime=runtime)
    everything = crowded.score_table(table)
    assert np.abs(alone - everything[few]).max() <= 1e-5
    for order in (list(range(len(table)))[::-1], random.Random(0).sample(range(len(table)), len(table))):
        assert np.abs(crowded.score_table(table.subset(order)) - everything[order]).max() <= 1e-5
    if variant == "int8":
        assert crowded.batch_size == 1 and "one sequence per forward pass" in caplog.text


def test_int8_embeddings_do_not_depend_on_batch_mates(embedder_exported, patent_corpus, tmp_path):
    import shutil

    from export.variants import quantize_int8
    from inference.backend.manifest import write_manifest
    from inference.retrieval.corpus import read_patents
    from inference.retrieval.encoder import EmbedderModel

    model_dir, manifest = embedder_exported
    folder = tmp_path / "int8"
    shutil.copytree(model_dir, folder)
    quantize_int8(folder / "model.onnx", folder / "model.int8.onnx")
    body = {k: v for k, v in manifest.items() if k not in ("format_version", "kind", "files", "manifest_sha256")}
    body["variants"] = {**manifest["variants"], "int8": ["model.int8.onnx"]}
    write_manifest(folder, manifest["kind"], body, [*manifest["files"], "model.int8.onnx"])
    model = EmbedderModel.load(folder, variant="int8")
    texts = [p.abstract for p in read_patents(patent_corpus)[:8]]
    together = model.encode_docs(texts, batch_size=8)
    alone = np.stack([model.encode_docs([t])[0] for t in texts])
    assert np.abs(together - alone).max() <= 1e-6


@pytest.mark.parametrize("layout, cuda, expected", [("multi", False, "int8"), ("pair", False, "fp32"),
                                                    ("multi", True, "fp16"), ("pair", True, "fp16")])
def test_auto_variant_per_layout_and_device(tmp_path, layout, cuda, expected):
    """int8 runs one sequence per pass: the CPU default only where that is cheap (multi layout)."""
    from inference.backend.manifest import Manifest
    from inference.backend.variants import pick_variant
    from inference.phrase.scorer import cpu_variant

    graphs = {v: [f"model.{v}.onnx"] for v in ("fp32", "int8", "fp16")}
    manifest = Manifest(tmp_path, {"variants": graphs, "layout": layout})
    assert pick_variant(manifest, "auto", cuda, cpu_variant(manifest)) == expected


def test_scorer_averages_the_runs_sibling_orders_by_default(phrase_exported, small_data):
    """The manifest carries the run's sibling_orders; the scorer averages that many orders unless told
    otherwise, and orders=1 is plain file order."""
    from inference.io import read_pairs
    from inference.phrase.inputs import TableContexts

    run_dir, model_dir = phrase_exported
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["sibling_orders"] == json.loads((run_dir / "config.json").read_text())["sibling_orders"] > 1
    table = read_pairs(small_data / "uspppm" / "train.csv")  # anchors with many targets (test.csv has few)
    default = PhraseScorer.load(model_dir, device="cpu", variant="fp32")
    assert default.orders == manifest["sibling_orders"]
    two = PhraseScorer.load(model_dir, device="cpu", variant="fp32", orders=2)
    by_hand = np.mean([two.score_inputs(i) for i in two.preprocess.build_orders(table, TableContexts.of(
        table, two.preprocess.vocab), 2)], axis=0)
    assert np.array_equal(two.score_table(table), by_hand)
    one = PhraseScorer.load(model_dir, device="cpu", variant="fp32", orders=1)
    assert np.array_equal(one.score_table(table), one.score_inputs(one.preprocess(table)))
    assert np.abs(one.score_table(table) - by_hand).max() > 0  # the second order moved some score


def fill_hub_cache(folder: Path, repo_id: str, cache: Path) -> dict:
    """``folder`` as ``repo_id``'s snapshot in a Hub cache laid out as huggingface_hub lays it (snapshot
    files link to blobs); the environment that reads it offline."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True)
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    for file in folder.iterdir():
        blob = repo / "blobs" / sha256_file(file)
        shutil.copy(file, blob)
        (repo / "snapshots" / "abc123" / file.name).symlink_to(os.path.relpath(blob, repo / "snapshots" / "abc123"))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    return {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}


def test_a_hub_repo_id_loads_from_the_local_cache_offline(phrase_exported, tmp_path):
    """A Hugging Face repo id in place of a folder: taken from a pre-filled Hub cache with HF_HUB_OFFLINE=1
    (no network); an id that is neither a folder nor cached is one error naming it."""
    env = fill_hub_cache(phrase_exported[1], "acme/patent-scorer", tmp_path / "hub")
    out = tmp_path / "hub.csv"
    proc = subprocess.run([sys.executable, "-m", "inference", "score", "--model", "acme/patent-scorer", "--input",
                           str(ROOT / "data" / "uspppm" / "test.csv"), "--output", str(out), "--quiet"],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(read_scores(out)[0]) == 36
    proc = subprocess.run([sys.executable, "-m", "inference", "score", "--model", "acme/not-cached", "--input",
                           str(ROOT / "data" / "uspppm" / "test.csv"), "--output", str(out)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode != 0 and "acme/not-cached: no such local folder, and the Hugging Face repo could not be" \
        in proc.stderr and "Traceback" not in proc.stderr


def test_the_three_inference_commands_share_their_defaults_and_say_them():
    """score, index and search: one --device default (auto) and one --runtime default, each option's help
    naming the default it really has; search's help says it uses the ANN structure where there is one."""
    import argparse

    from inference.__main__ import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    options = {name: {o: a for a in sub._actions for o in a.option_strings} for name, sub in commands.choices.items()}
    assert {"score", "index", "search"} <= set(options)
    for name in ("score", "index", "search"):
        assert options[name]["--device"].default == "auto", name
        assert "auto" in options[name]["--device"].help
    for name in ("score", "index"):
        variant = options[name]["--variant"]
        assert variant.default == "auto" and "(default: auto)" in variant.help, name
    for name in [n for n in ("score", "index", "search") if "--runtime" in options[n]]:
        assert options[name]["--runtime"].default == "auto", name
    assert "ANN" in commands.choices["search"].description and "--exact" in options["search"]


def test_an_embedder_repo_id_indexes_and_searches_offline(embedder_exported, patent_corpus, tmp_path):
    """`inference index --model owner/name` and `search` over it, from a pre-filled Hub cache, no network."""
    env = fill_hub_cache(embedder_exported[0], "acme/patent-embedder", tmp_path / "hub")
    index = tmp_path / "idx"
    for command in (["index", "--model", "acme/patent-embedder", "--corpus", str(patent_corpus), "--out", str(index),
                     "--no-bm25", "--quiet"],
                    ["search", "--index", str(index), "--query", "catheter", "-k", "3", "--json"]):
        proc = subprocess.run([sys.executable, "-m", "inference", *command], capture_output=True, text=True, env=env,
                              cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(json.loads(proc.stdout)[0]["hits"]) == 3
