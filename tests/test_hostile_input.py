"""Hostile input, second round: a user's folder is never written into, and each kind of bad input found
by the probes is a one-line error (or, where the input is merely odd, a correct result), never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inference import PhraseScorer
from inference.backend.manifest import ModelFolderError, sha256_file
from inference.io import DataError, read_pairs
from tests.conftest import ROOT


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT)


def test_training_never_writes_into_a_folder_that_is_not_its_own_run(tiny_config, tmp_path):
    from solution.phrase.train import run
    from solution.run_folder import MARKER_FILE

    user = tmp_path / "mine"
    user.mkdir()
    files = {"config.json": '{"mine": 1}', "metrics.json": "[]", "notes.txt": "do not lose"}
    for name, text in files.items():
        (user / name).write_text(text)
    with pytest.raises(SystemExit, match="holds files that are not a training run's"):
        run(tiny_config(out=str(user), epochs=1, folds=1))
    assert {p.name: p.read_text() for p in user.iterdir()} == files  # untouched, nothing added
    (user / "notes.txt").write_text("x")
    with pytest.raises(SystemExit, match="has no run_state.json to resume from"):
        run(tiny_config(out=str(user), epochs=1, folds=1), resume=True)

    empty = tmp_path / "empty"
    empty.mkdir()
    run(tiny_config(out=str(empty), epochs=1, folds=1, lora=False, contrastive_weight=0.0))
    assert (empty / MARKER_FILE).is_file() and (empty / "run_state.json").is_file()


@pytest.mark.parametrize("trainer", [["solution.train"], ["solution.train", "embedder"]])
def test_either_train_command_refuses_a_users_folder_and_a_planted_state(tiny_model, small_data, tmp_path, trainer):
    """As a user types it: a folder of theirs is refused before anything is written, and a run_state.json
    put there by hand does not make it a run to resume."""
    user = tmp_path / "mine"
    user.mkdir()
    (user / "config.json").write_text('{"mine": 1}')
    common = ["--model", str(tiny_model), "--out", str(user), "--device", "cpu"]
    proc = cli(*trainer, *common)
    assert proc.returncode != 0 and "holds files that are not a training run's" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    kind = "embedder" if "embedder" in trainer else "phrase"
    (user / "run_state.json").write_text(json.dumps({"kind": kind, "config": {}, "elapsed_s": 0, "complete": False}))
    proc = cli(*trainer, *common, "--resume")
    assert proc.returncode != 0 and "not created by this trainer" in proc.stderr, proc.stderr[-2000:]
    assert sorted(p.name for p in user.iterdir()) == ["config.json", "run_state.json"]
    assert (user / "config.json").read_text() == '{"mine": 1}'


@pytest.mark.parametrize("option", ["--max-abs-diff=inf", "--max-pearson-loss=nan", "--max-ndcg-loss=inf",
                                    "--batch-size=0"])
def test_export_refuses_a_gate_that_cannot_fail_before_any_work(phrase_exported, tmp_path, option):
    """An infinite tolerance would pass every variant through the parity gate; NaN would fail them all
    after the work: both are refused as the options are read."""
    from export.__main__ import main as export_main

    with pytest.raises(SystemExit) as raised:
        export_main(["--run", str(phrase_exported[0]), "--out", str(tmp_path / "model"), option])
    assert raised.value.code == 2 and not (tmp_path / "model").exists()


def test_a_training_run_killed_before_its_first_state_may_start_again_in_its_folder(tmp_path):
    from solution.run_folder import RunFolder

    folder = RunFolder(tmp_path / "run", kind="phrase")
    folder.open(resume=False)
    folder.mark()  # the run's first write claims the folder
    (tmp_path / "run" / "template.json").write_text("{}")  # written by the run, then it was killed
    assert RunFolder(tmp_path / "run", kind="phrase").open(resume=False) == (0.0, None)
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit, match="is a file, not a folder"):
        RunFolder(tmp_path / "file", kind="phrase").open(resume=False)


def write_pairs(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "anchor", "target", "context"])
        writer.writerows(rows)
    return path


def test_a_phrase_without_tokens_is_scored_not_a_crash(phrase_exported, tmp_path, caplog):
    """Only control characters: the tokenizer gives no token; the scorer and solution.predict score it as the
    unknown token, with a warning, and the other rows as usual."""
    from solution.phrase.predict import predict_file

    path = write_pairs(tmp_path / "odd.csv", [("1", "abatement", "\x01\x02", "A47"), ("2", "abatement", "table", "A47"),
                                              ("3", "\x03", "chair", "B60")])
    scorer = PhraseScorer.load(phrase_exported[1], device="cpu", variant="fp32")
    with caplog.at_level("WARNING"):
        scores = scorer.score_table(read_pairs(path))
    assert scores.shape == (3,) and np.isfinite(scores).all() and "have no tokens" in caplog.text
    ids, torch_scores = predict_file(phrase_exported[0], path, device="cpu")
    assert ids == ["1", "2", "3"] and np.abs(torch_scores - scores).max() < 1e-4
    nul = write_pairs(tmp_path / "nul.csv", [("1", "abatement", "\x00\x00", "A47"), ("2", "abatement", "table", "A47")])
    for command in (["inference", "score", "--model", str(phrase_exported[1]), "--quiet"],
                    ["solution.predict", "--run", str(phrase_exported[0])]):  # as the probes ran them
        out = tmp_path / f"{command[0]}.csv"
        proc = cli(*command, "--input", str(nul), "--output", str(out), "--device", "cpu")
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert out.read_text().splitlines()[0] == "id,score" and len(out.read_text().splitlines()) == 3


def test_a_field_over_the_csv_limit_is_a_data_error_naming_the_line(tmp_path):
    path = write_pairs(tmp_path / "long.csv", [("1", "a", "b", "A47"), ("2", "a", "x" * 200_000, "A47")])
    with pytest.raises(DataError, match=r"long.csv: line 3: not readable as CSV \(field larger than field limit"):
        read_pairs(path)


def test_a_header_with_very_many_columns_is_refused_at_once(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(",".join(["id", "anchor", "target", "context"] + [f"c{i}" for i in range(200_000)]) + "\n")
    with pytest.raises(DataError, match="line 1 \\(header\\): 200004 columns"):
        read_pairs(path)


def test_a_lone_surrogate_through_the_api_is_a_clear_error(phrase_exported, embedder_exported):
    from inference.retrieval.encoder import EmbedderModel

    scorer = PhraseScorer.load(phrase_exported[1], device="cpu", variant="fp32")
    with pytest.raises(DataError, match="line 2, column 'target': not valid Unicode: a lone surrogate"):
        scorer.score([("abatement", "table", "A47"), ("abatement", "tab\udc80le", "A47")])
    model = EmbedderModel.load(embedder_exported[0], variant="fp32")
    with pytest.raises(ValueError, match="text 2 of 2: not valid Unicode"):
        model.encode_docs(["fine", "\ud800"])


def test_a_truncated_graph_with_a_matching_manifest_is_named(phrase_exported, tmp_path):
    """The manifest re-hashed to match a cut graph (a careless copy tool, or a hostile edit): the loader says
    which file is not a graph instead of onnxruntime's InvalidProtobuf traceback."""
    from tests.test_inference import copy_model, rewrite_manifest

    folder = copy_model(phrase_exported[1], tmp_path)
    graph = folder / "model.fold0.onnx"
    graph.write_bytes(graph.read_bytes()[:5000])

    def rehash(data: dict) -> None:
        data["files"]["model.fold0.onnx"].update(sha256=sha256_file(graph), bytes=graph.stat().st_size)

    rewrite_manifest(folder, rehash)
    with pytest.raises(ModelFolderError, match="model.fold0.onnx: not a valid ONNX graph"):
        PhraseScorer.load(folder, device="cpu", variant="fp32", runtime="onnxruntime")
    proc = cli("inference", "score", "--model", str(folder), "--input", str(ROOT / "data" / "uspppm" / "test.csv"),
               "--output", str(tmp_path / "out.csv"), "--variant", "fp32", "--runtime", "onnxruntime")
    assert proc.returncode != 0 and "not a valid ONNX graph" in proc.stderr and "Traceback" not in proc.stderr


def test_a_header_without_rows_gives_a_header_only_output(phrase_exported, tmp_path):
    empty = write_pairs(tmp_path / "empty.csv", [])
    for command in (["inference", "score", "--model", str(phrase_exported[1])],
                    ["solution.predict", "--run", str(phrase_exported[0])]):
        out = tmp_path / f"{command[0]}.csv"
        proc = cli(*command, "--input", str(empty), "--output", str(out))
        assert proc.returncode == 0, proc.stderr
        assert out.read_text() == "id,score\n" and "has a header and no rows" in proc.stderr
    with pytest.raises(DataError, match="no data rows"):
        read_pairs(empty)  # training data without rows stays an error


def test_an_index_holding_non_finite_vectors_is_refused_at_load_or_search(embedder_exported, patent_corpus, tmp_path):
    from inference.retrieval.index import INDEX_FILE, IndexMismatchError, build_index, sampled_sha256
    from inference.retrieval.ranker import PatentRanker

    index = tmp_path / "idx"
    build_index(embedder_exported[0], patent_corpus, index, chunk_size=32, progress=False, bm25=True)
    embeddings = np.load(index / "embeddings.npy", mmap_mode="r+")
    embeddings[7, 3] = np.nan
    embeddings.flush()
    del embeddings
    info = json.loads((index / INDEX_FILE).read_text())
    info["files"]["embeddings.npy"] = sha256_file(index / "embeddings.npy")  # a hostile, consistent edit
    info["sampled"]["embeddings.npy"] = sampled_sha256(index / "embeddings.npy")
    (index / INDEX_FILE).write_text(json.dumps(info))
    with pytest.raises(IndexMismatchError, match="embeddings.npy: row 7 .* is not finite"):
        PatentRanker.load(index, ann=False, verify=True)
    ranker = PatentRanker.load(index, ann=False)  # the cheap load reads a sample; the scan checks each row it scores
    for hybrid in (False, "rrf"):
        with pytest.raises(IndexMismatchError, match=r"embeddings.npy: row 7 \(patent .*\) is not finite"):
            ranker.search_batch(["catheter", "stent"], k=3, hybrid=hybrid)
    for extra in ([], ["--verify"]):
        proc = cli("inference", "search", "--index", str(index), "--query", "catheter", "--json", *extra)
        assert proc.returncode != 0 and "is not finite" in proc.stderr and "Traceback" not in proc.stderr
        assert proc.stdout == ""  # no partial JSON either


def test_search_reads_a_queries_file_strictly_and_refuses_a_nan_alpha(embedder_exported, patent_corpus, tmp_path):
    from inference.retrieval.index import build_index

    index = tmp_path / "idx"
    build_index(embedder_exported[0], patent_corpus, index, chunk_size=32, progress=False, bm25=False)
    queries = tmp_path / "queries.txt"
    queries.write_bytes(b"catheter\nbad \xff byte\n")
    proc = cli("inference", "search", "--index", str(index), "--queries", str(queries))
    assert proc.returncode != 0 and "queries.txt: line 2" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("inference", "search", "--index", str(index), "--query", "catheter", "--alpha", "nan")
    assert proc.returncode != 0 and "not a finite number" in proc.stderr


def test_export_force_never_replaces_a_folder_it_did_not_write(phrase_exported, tmp_path):
    from export.__main__ import main as export_main

    user = tmp_path / "documents"
    user.mkdir()
    (user / "thesis.txt").write_text("years of work")
    with pytest.raises(SystemExit, match="not a folder this exporter wrote"):
        export_main(["--run", str(phrase_exported[0]), "--out", str(user), "--force"])
    assert [p.name for p in user.iterdir()] == ["thesis.txt"] and (user / "thesis.txt").read_text() == "years of work"


def test_an_index_is_never_built_into_a_users_folder(embedder_exported, patent_corpus, tmp_path):
    from inference.retrieval.index import IndexMismatchError, build_index

    user = tmp_path / "mine"
    user.mkdir()
    (user / "ids.json").write_text('["my", "list"]')
    with pytest.raises(IndexMismatchError, match="exists and is not an index folder"):
        build_index(embedder_exported[0], patent_corpus, user, chunk_size=32, progress=False, bm25=False)
    assert [p.name for p in user.iterdir()] == ["ids.json"] and (user / "ids.json").read_text() == '["my", "list"]'
