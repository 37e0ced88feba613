"""Patent indexes and search: round trip, resume, fp16, refusal of a mismatched model, CLI, torch-free."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT


def test_index_round_trip_and_search(tmp_path, embedder_exported, patent_corpus):
    from inference.retrieval import PatentRanker
    from inference.retrieval.corpus import read_patents
    from inference.retrieval.encoder import EmbedderModel
    from inference.retrieval.index import build_index

    model_dir, _ = embedder_exported
    info = build_index(model_dir, patent_corpus, tmp_path / "idx", chunk_size=16, progress=False)
    assert info["complete"] and info["count"] == 60 and info["bm25"]
    patents = read_patents(patent_corpus)
    model = EmbedderModel.load(model_dir)
    direct = model.encode_docs([p.view(model.doc_view) for p in patents])
    stored = np.load(tmp_path / "idx" / "embeddings.npy", mmap_mode="r")
    assert np.allclose(stored, direct, atol=1e-5)

    ranker = PatentRanker.load(tmp_path / "idx")
    query = patents[5].title
    hits = ranker.search(query, k=5)
    expected = np.argsort(-(direct @ model.encode_queries([query])[0]), kind="stable")[:5]
    assert [h[0] for h in hits] == [patents[i].patent_id for i in expected]
    assert hits[0][2] == patents[expected[0]].title and hits[0][1] >= hits[-1][1]
    hybrid = ranker.search(query, k=3, hybrid=True)
    assert patents[5].patent_id in [h[0] for h in hybrid]  # BM25 on the exact title
    batch = ranker.search_batch([query, patents[9].title], k=4, hybrid="convex")
    assert len(batch) == 2 and all(len(b) == 4 for b in batch)


def test_index_resume_and_fp16(tmp_path, embedder_exported, patent_corpus):
    from inference.retrieval.index import INDEX_FILE, build_index

    model_dir, _ = embedder_exported
    out = tmp_path / "idx16"
    build_index(model_dir, patent_corpus, out, dtype="float16", chunk_size=16, progress=False, bm25=False)
    full = np.array(np.load(out / "embeddings.npy"))
    assert full.dtype == np.float16
    # simulate an interruption after the first chunk: the tail is lost, the progress says 1 chunk
    info = json.loads((out / INDEX_FILE).read_text())
    info.update(chunks_done=1, complete=False)
    (out / INDEX_FILE).write_text(json.dumps(info))
    emb = np.load(out / "embeddings.npy", mmap_mode="r+")
    emb[16:] = 0
    emb.flush()
    del emb
    again = build_index(model_dir, patent_corpus, out, dtype="float16", chunk_size=16, progress=False, bm25=False)
    assert again["complete"] and np.array_equal(np.load(out / "embeddings.npy"), full)


def test_mismatched_index_refused(tmp_path, embedder_exported, patent_corpus, tiny_model):
    from export.embedder import EmbedderExportOptions, export_embedder
    from inference.retrieval import PatentRanker
    from inference.retrieval.index import IndexMismatchError, build_index

    model_dir, _ = embedder_exported
    build_index(model_dir, patent_corpus, tmp_path / "idx", chunk_size=32, progress=False, bm25=False)
    other = export_embedder(EmbedderExportOptions(tmp_path / "zero-shot", model=str(tiny_model), exporter="legacy",
                                                  int8=False))
    assert other["files"]["model.onnx"]["sha256"] != json.loads((tmp_path / "idx" / "index.json").read_text())["model_sha256"]
    with pytest.raises(IndexMismatchError, match="embeddings of different models are not comparable"):
        PatentRanker.load(tmp_path / "idx", model=tmp_path / "zero-shot")
    with pytest.raises(IndexMismatchError, match="built with model"):
        build_index(tmp_path / "zero-shot", patent_corpus, tmp_path / "idx", chunk_size=32, progress=False)


def test_cli_index_search_and_export_dispatch(tmp_path, embedder_run, patent_corpus):
    """The user-facing commands: python -m export (kind dispatch), python -m inference index / search."""
    env_cmd = [sys.executable, "-m"]
    out = tmp_path / "model"
    subprocess.run(env_cmd + ["export", "--run", str(embedder_run[0]), "--out", str(out), "--exporter", "legacy",
                              "--no-int8", "--no-fp16"], check=True, cwd=ROOT, capture_output=True)
    subprocess.run(env_cmd + ["inference", "index", "--model", str(out), "--corpus", str(patent_corpus), "--out",
                              str(tmp_path / "idx"), "--quiet"], check=True, cwd=ROOT, capture_output=True)
    assert json.loads((tmp_path / "idx" / "index.json").read_text())["bm25_stemmer"] == "english"
    subprocess.run(env_cmd + ["inference", "index", "--model", str(out), "--corpus", str(patent_corpus), "--out",
                              str(tmp_path / "plain"), "--quiet", "--bm25-stemmer", "none"], check=True, cwd=ROOT,
                   capture_output=True)
    assert json.loads((tmp_path / "plain" / "bm25" / "tokenizer.json").read_text())["stemmer"] is None
    subprocess.run(env_cmd + ["inference", "index", "--model", str(out), "--corpus", str(patent_corpus), "--out",
                              str(tmp_path / "words"), "--quiet", "--bm25-pair-weight", "0"], check=True, cwd=ROOT,
                   capture_output=True)
    assert json.loads((tmp_path / "idx" / "bm25" / "tokenizer.json").read_text())["pair_weight"] == 0.35
    assert json.loads((tmp_path / "words" / "bm25" / "tokenizer.json").read_text())["pair_weight"] == 0
    res = subprocess.run(env_cmd + ["inference", "search", "--index", str(tmp_path / "idx"), "--query",
                                    "absorbent article for pets", "-k", "3", "--hybrid", "convex", "--alpha", "0", "--json"],
                         check=True, cwd=ROOT, capture_output=True, text=True)
    hits = json.loads(res.stdout)[0]["hits"]
    assert len(hits) == 3 and hits[0]["patent_id"] == "11213014"  # alpha 0: BM25 alone decides (random tiny model)
    bad = subprocess.run(env_cmd + ["inference", "search", "--index", str(tmp_path / "nope"), "--query", "x"],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "not an index folder" in bad.stderr


def test_inference_retrieval_is_torch_free():
    code = ("import sys, inference.retrieval.cli, inference.retrieval.ranker, inference.retrieval.encoder, "
            "inference.retrieval.index; from inference import PatentRanker; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)



def test_embedder_sessions_follow_the_shared_device_rules(embedder_exported, caplog, request):
    """The retrieval encoder opens its session through inference/backend, like the phrase scorer:
    cuda without a working CUDA provider is an error, auto falls back to CPU and says so."""
    import logging

    from inference.backend.session import DeviceError
    from inference.retrieval.encoder import EmbedderModel

    model_dir, _ = embedder_exported
    assert EmbedderModel.load(model_dir).providers == ["CPUExecutionProvider"]
    request.getfixturevalue("cuda_that_falls_back")  # from here on CUDA is offered but falls back
    with pytest.raises(DeviceError, match="fell back to"):
        EmbedderModel.load(model_dir, device="cuda")
    with caplog.at_level(logging.WARNING):
        model = EmbedderModel.load(model_dir, device="auto")
    assert model.providers == ["CPUExecutionProvider"] and "CUDA is not usable" in caplog.text


def test_pad_id_comes_from_the_tokenizer_and_padding_changes_no_embedding(embedder_exported, patent_corpus):
    from tokenizers import Tokenizer, models

    from inference.retrieval.corpus import read_patents
    from inference.retrieval.encoder import EmbedderModel, pad_id_of

    roberta_like = Tokenizer(models.WordLevel({"<s>": 0, "hello": 1, "</s>": 2, "<pad>": 3}, unk_token="<s>"))
    assert pad_id_of(roberta_like) == 3  # not BERT's "[PAD]", which this vocabulary lacks
    model_dir, manifest = embedder_exported
    model = EmbedderModel.load(model_dir)
    assert model.queries.pad_id == manifest["pad_id"] == model.docs.pad_id
    texts = [p.title for p in read_patents(patent_corpus)[:6]]
    together = model.encode_docs(texts, batch_size=6)  # padded to the longest title
    alone = np.stack([model.encode_docs([t])[0] for t in texts])
    assert np.allclose(together, alone, atol=1e-5)


def test_bm25_state_is_stemmed_hashed_and_checked(tmp_path, embedder_exported, patent_corpus):
    from inference.retrieval import PatentRanker
    from inference.retrieval.index import IndexMismatchError, build_index

    model_dir, _ = embedder_exported
    info = build_index(model_dir, patent_corpus, tmp_path / "idx", chunk_size=32, progress=False)
    bm25_names = [name for name in info["files"] if name.startswith("bm25/")]
    assert info["bm25_stemmer"] == "english" and "bm25/tokenizer.json" in bm25_names and len(bm25_names) >= 4
    ranker = PatentRanker.load(tmp_path / "idx")
    assert ranker.bm25.stemmer == "english"
    (tmp_path / "idx" / "bm25" / "tokenizer.json").write_text('{"stemmer": null}\n')  # would unstem the queries
    with pytest.raises(IndexMismatchError, match="tokenizer.json: missing, or its sha256 does not match"):
        PatentRanker.load(tmp_path / "idx")


def test_a_corrupted_or_mismatched_index_is_refused(embedder_exported, patent_corpus, tmp_path, monkeypatch):
    import shutil

    from inference.backend.manifest import sha256_file
    from inference.retrieval import PatentRanker
    from inference.retrieval.encoder import EmbedderModel
    from inference.retrieval.index import IndexMismatchError, build_index, sampled_sha256

    model_dir, _ = embedder_exported
    good = tmp_path / "good"
    build_index(model_dir, patent_corpus, good, chunk_size=32, progress=False, bm25=False)
    flipped = tmp_path / "flipped"
    shutil.copytree(good, flipped)
    data = bytearray((flipped / "embeddings.npy").read_bytes())
    data[-7] ^= 0x40  # one bit of one float: a finite, wrong score without the hash
    (flipped / "embeddings.npy").write_bytes(bytes(data))
    with pytest.raises(IndexMismatchError, match="embeddings.npy: missing, or its sha256 does not match"):
        PatentRanker.load(flipped)
    (flipped / "embeddings.npy").write_bytes(bytes(data[: len(data) // 2]))  # truncated: refused, not a numpy error
    with pytest.raises(IndexMismatchError, match="sha256 does not match"):
        PatentRanker.load(flipped)

    unhashed = tmp_path / "unhashed"  # a complete index whose description lost its files' hashes
    shutil.copytree(good, unhashed)
    info = json.loads((unhashed / "index.json").read_text())
    del info["files"]
    (unhashed / "index.json").write_text(json.dumps(info))
    with pytest.raises(IndexMismatchError, match="without its files' sha256"):
        PatentRanker.load(unhashed)
    emptied = tmp_path / "emptied"  # embeddings.npy emptied and index.json re-hashed to match (found by the fuzzer)
    shutil.copytree(good, emptied)
    (emptied / "embeddings.npy").write_bytes(b"")
    info = json.loads((good / "index.json").read_text())
    info["files"]["embeddings.npy"] = sha256_file(emptied / "embeddings.npy")
    info["sampled"]["embeddings.npy"] = sampled_sha256(emptied / "embeddings.npy")
    (emptied / "index.json").write_text(json.dumps(info))
    with pytest.raises(IndexMismatchError, match="unreadable index files"):
        PatentRanker.load(emptied)
    for name, data in [("ids.json", b"null"), ("titles.json", b'{"a": 1}'), ("embeddings.npy", None)]:
        shutil.rmtree(emptied)
        shutil.copytree(good, emptied)
        if data is None:  # a valid .npy of the wrong dtype
            np.save(emptied / name, np.load(good / name).astype(np.float64))
        else:
            (emptied / name).write_bytes(data)
        info = json.loads((good / "index.json").read_text())
        info["files"][name] = sha256_file(emptied / name)
        info["sampled"] = {k: sampled_sha256(emptied / k) for k in info["sampled"]}
        (emptied / "index.json").write_text(json.dumps(info))
        with pytest.raises(IndexMismatchError, match="not a list of strings|float64 values"):
            PatentRanker.load(emptied)
    for key, value in [("model_sha256", None), ("count", -1), ("dim", "32"), ("complete", 1), ("ann", ["ivf"]),
                       ("dtype", "int8")]:
        info = json.loads((good / "index.json").read_text())  # a hand-edited description: named, not a TypeError
        info[key] = value
        (unhashed / "index.json").write_text(json.dumps(info))
        with pytest.raises(IndexMismatchError, match=f"index.json: {key} is"):
            PatentRanker.load(unhashed)

    monkeypatch.setattr(EmbedderModel, "encode_docs", lambda self, texts, batch_size=32: np.full((len(texts), 32), np.nan))
    with pytest.raises(IndexMismatchError, match="non-finite embedding for patent"):
        build_index(model_dir, patent_corpus, tmp_path / "nan", chunk_size=32, progress=False, bm25=False)


def test_cli_index_build_killed_midway_resumes_to_the_same_index(tmp_path, embedder_exported):
    """SIGKILL of `python -m inference index` after some chunks: the rerun finishes the same index."""
    import os
    import signal
    import time

    from tests.conftest import EMBEDDER_COLUMNS, _rows, write_csv

    rows = _rows(ROOT / "data" / "patents" / "a61_patents.csv")[:1500]
    corpus = write_csv(tmp_path / "patents.csv", rows, EMBEDDER_COLUMNS)
    cmd = [sys.executable, "-m", "inference", "index", "--model", str(embedder_exported[0]), "--corpus", str(corpus),
           "--chunk-size", "4", "--quiet", "--no-bm25", "--ann", "none"]
    proc = subprocess.Popen(cmd + ["--out", str(tmp_path / "killed")], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    state = tmp_path / "killed" / "index.json"
    deadline = time.monotonic() + 300  # only a guard against a hang, not a timing assertion
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads(state.read_text())["chunks_done"] >= 3:
                break
        except (OSError, ValueError, KeyError):
            pass
        try:
            proc.wait(timeout=0.005)  # poll the progress file every few ms until the build has some chunks
        except subprocess.TimeoutExpired:
            pass
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = json.loads(state.read_text())
    assert not done["complete"] and 3 <= done["chunks_done"] < 375  # killed midway, progress on disk
    subprocess.run(cmd + ["--out", str(tmp_path / "killed")], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(cmd + ["--out", str(tmp_path / "whole")], cwd=ROOT, check=True, capture_output=True)
    resumed = json.loads(state.read_text())
    whole = json.loads((tmp_path / "whole" / "index.json").read_text())
    assert resumed["complete"] and resumed["files"] == whole["files"]  # byte-identical embeddings, ids, titles


def test_an_index_moved_together_with_its_model_still_searches(tmp_path, embedder_exported, patent_corpus):
    import shutil

    from inference.retrieval.index import IndexMismatchError, build_index
    from inference.retrieval.ranker import PatentRanker

    before = tmp_path / "here"
    shutil.copytree(embedder_exported[0], before / "model")
    build_index(before / "model", patent_corpus, before / "index", chunk_size=32, progress=False, bm25=False)
    hits = PatentRanker.load(before / "index", ann=False).search("catheter", k=3)
    after = tmp_path / "moved"
    before.rename(after)  # the old paths are gone: only the relative reference can find the model
    assert PatentRanker.load(after / "index", ann=False).search("catheter", k=3) == hits
    shutil.rmtree(after / "model")
    with pytest.raises(IndexMismatchError, match="its model is at neither"):
        PatentRanker.load(after / "index", ann=False)


def test_a_load_checks_a_sample_of_the_embeddings_and_verify_hashes_them_whole(tmp_path):
    """Opening an index reads 4 MiB of its embeddings for the check, whatever their size; verify reads all."""
    from inference.backend.manifest import sha256_file
    from inference.retrieval.index import IndexMismatchError, check_files, sampled_sha256

    path = tmp_path / "embeddings.npy"
    data = bytearray(np.random.default_rng(0).bytes(8 << 20))
    path.write_bytes(bytes(data))
    info = {"files": {path.name: sha256_file(path)}, "sampled": {path.name: sampled_sha256(path)}}
    check_files(tmp_path, info, [path.name], verify=True)
    data[(8 << 20) // 2 + 12345] ^= 1  # between two sampled blocks: the sample cannot see it
    path.write_bytes(bytes(data))
    check_files(tmp_path, info, [path.name], verify=False)
    with pytest.raises(IndexMismatchError, match="sha256 does not match"):
        check_files(tmp_path, info, [path.name], verify=True)
    data[-1] ^= 1  # the last block is always in the sample
    path.write_bytes(bytes(data))
    with pytest.raises(IndexMismatchError, match="checked on a sample"):
        check_files(tmp_path, info, [path.name], verify=False)
