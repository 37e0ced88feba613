"""Property-based fuzzing (Hypothesis) of every parser and loader a user's bytes reach: the phrase CSV
reader and scorer, the config loader (files and ``--set``), the model-folder loader, the index loader and
search queries.

The invariant of each target: the correct result, or one of the project's own errors (the exceptions
each CLI turns into a one-line message), never another exception; a failed run leaves no output file
and no input changed. Hypothesis's deadline bounds each example's time (60 s). CI runs the ``ci`` profile (a
fixed, small number of examples per target); ``benchmarks/fuzz_long.py`` runs the ``long`` profile and
records what it tried in RESULTS.md (``HYPOTHESIS_PROFILE=long``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings  # profiles "ci" and "long": tests/conftest.py
from hypothesis import strategies as st

from inference import PhraseScorer
from inference.backend.manifest import MANIFEST, SELF_HASH, ModelFolderError, self_hash, sha256_file
from inference.backend.openvino_runner import RuntimeMissingError
from inference.backend.session import DeviceError
from inference.io import DataError, OutputError, read_pairs

# What the scorer's CLI turns into "error: ..." / "data error: ..." (inference/phrase/scorer.py run_score)
SCORER_ERRORS = (DataError, OutputError, ModelFolderError, DeviceError, RuntimeMissingError, ValueError)

# ---- generators: text with the characters that break parsers, in the encodings users' files come in ----

NASTY = ["\x00", "\x01", "\x1f", "\x7f", "\u200b", "\ufeff", "\u2028", "\ud800", "\udfff", '"', ",", "\n", "\r",
         "\r\n", "\t", "\\", "'", "A47", "A", "", " ", "é", "漢", "😀", "NA", "null", "=cmd|' /C calc'!A0"]
text = st.one_of(st.text(max_size=30), st.lists(st.sampled_from(NASTY), max_size=6).map("".join),
                 st.text(alphabet=st.characters(codec=None), max_size=12))


ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "utf-8+bad-bytes"]


def encode(value: str, encoding: str) -> bytes:
    """Bytes of ``value`` as a user's tool might write it (lone surrogates pass through as bad bytes;
    "utf-8+bad-bytes" splices bytes that are never valid UTF-8 into it)."""
    if encoding in ("utf-16", "utf-16-le", "utf-32"):
        return value.encode(encoding, "surrogatepass")
    if encoding in ("latin-1", "cp1252"):
        return value.encode(encoding, "replace")
    prefix = b"\xef\xbb\xbf" if encoding == "utf-8-sig" else b""
    data = prefix + value.encode("utf-8", "surrogatepass")
    if encoding == "utf-8+bad-bytes":
        middle = len(data) // 2
        data = data[:middle] + b"\xff\xc0\x80" + data[middle:]
    return data


@st.composite
def csv_bytes(draw) -> bytes:
    """A phrase CSV in some encoding and shape: a header of the right, missing, repeated or extra columns;
    rows of any width; fields with quotes, newlines, NUL, surrogates; sometimes one huge field."""
    columns = draw(st.one_of(st.just(["id", "anchor", "target", "context"]),
                             st.permutations(["id", "anchor", "target", "context", "score"]),
                             st.lists(st.sampled_from(["id", "anchor", "target", "context", "score", "x", ""]),
                                      max_size=7),
                             # very many columns: the required ones among hundreds or thousands of others
                             st.integers(100, 5_000).map(lambda n: ["id", "anchor", "target", "context"]
                                                         + [f"c{i}" for i in range(n)])))
    anchors = draw(st.lists(text, min_size=1, max_size=3))
    width = min(len(columns), 8) + 2  # rows of a very wide header stay narrow: a short row is an error too
    rows = draw(st.lists(st.lists(st.one_of(text, st.sampled_from(anchors), st.sampled_from(["A47", "B60", "a47"])),
                                  min_size=0, max_size=width), max_size=12))
    if draw(st.booleans()) and rows and rows[0]:
        rows[0][0] = "x" * draw(st.sampled_from([1_000, 131_073, 300_000]))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(columns)
    writer.writerows(rows)
    data = encode(buffer.getvalue(), draw(st.sampled_from(ENCODINGS)))
    return data if draw(st.integers(0, 9)) else data[: draw(st.integers(0, len(data)))]  # sometimes cut short


@st.composite
def pair_rows(draw) -> list[tuple[str, str, str, str]]:
    """Rows that mostly read (unique ids, phrases, CPC codes) but hold odd phrases and groups of any size."""
    anchors = draw(st.lists(text.filter(str.strip), min_size=1, max_size=3))
    n = draw(st.integers(1, 30))
    return [(f"id{i}", draw(st.sampled_from(anchors)), draw(text.filter(str.strip)),
             draw(st.sampled_from(["A47", "B60", "H04", "Z99", "a47 "]))) for i in range(n)]


@st.composite
def readable_csv_bytes(draw) -> bytes:
    """A phrase CSV that mostly reads: the right header, odd but valid phrases (:func:`pair_rows`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "anchor", "target", "context"])
    writer.writerows(draw(pair_rows()))
    return encode(buffer.getvalue(), draw(st.sampled_from(["utf-8", "utf-8-sig"])))


def json_values(max_leaves: int = 8):
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_subnormal=False),
                        text, st.sampled_from(["fp32", "multi", "pair", "model.fold0.onnx", "../../etc/passwd",
                                               "/etc/passwd", "tokenizer.json"]))
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(text, inner, max_size=4)),
                        max_leaves=max_leaves)


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A fresh folder per example, removed after it (pytest's tmp_path is one per test, shared by every example)."""
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def one_line(err: BaseException) -> str:
    """The error's first line (what names the file, key or row; a DataError lists its problems under it)."""
    message = str(err.code if isinstance(err, SystemExit) else err)
    assert message.strip() and "Traceback" not in message
    return message.splitlines()[0]


# ---- the phrase CSV: reader, scorer (API and what its CLI writes) ----

@given(data=csv_bytes(), require_score=st.booleans())
def test_the_pair_reader_reads_or_names_the_file(data, require_score):
    with scratch() as folder:
        path = folder / "pairs.csv"
        path.write_bytes(data)
        try:
            table = read_pairs(path, require_score=require_score)
        except DataError as err:
            assert one_line(err).startswith(str(path))
        else:
            assert len(table) and all(len(v) == len(table) for v in table.columns.values())
            assert len(set(table.ids)) == len(table)
        assert path.read_bytes() == data


@given(data=st.binary(max_size=80).map(lambda b: bytes(b"ab\r\n"[x % 4] for x in b)), limit=st.integers(1, 12))
def test_lines_split_as_universal_newlines_and_an_overlong_one_is_refused(data, limit):
    """The reader's line splitter (LF, CRLF, bare CR), read ``limit`` bytes at a time: the same lines as
    bytes.splitlines, or, where a line is longer than the limit, a DataError naming the file."""
    from unittest import mock

    import inference.io as io_module

    expected = data.splitlines(keepends=True)
    with mock.patch.object(io_module, "MAX_LINE_BYTES", limit):
        try:
            lines = list(io_module.raw_lines(Path("f.csv"), io.BytesIO(data)))
        except DataError as err:
            assert one_line(err).startswith("f.csv: line ") and max(map(len, expected)) > limit
        else:
            assert lines == expected
            assert all(len(line.rstrip(b"\r\n")) <= 2 * limit + 1 for line in lines)


@pytest.fixture(scope="module")
def scorer(phrase_exported) -> PhraseScorer:
    return PhraseScorer.load(phrase_exported[1], device="cpu", variant="fp32", runtime="onnxruntime")


@given(data=csv_bytes())
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
def test_scoring_any_file_writes_every_row_or_nothing(scorer, data):
    """A file the reader accepts scores whole (only a context section the model never saw may still be
    refused); any other file is one DataError naming it; no output either way but a whole one."""
    with scratch() as folder:
        source, output = folder / "in.csv", folder / "out" / "scores.csv"
        source.write_bytes(data)
        try:
            table = read_pairs(source, allow_empty=True)
        except DataError:
            table = None
        allowed = (DataError,) if table is not None else SCORER_ERRORS
        try:
            scores = scorer.score_csv(source, output)
        except allowed as err:
            assert one_line(err).startswith(str(source))
            assert not output.exists()
        else:
            assert table is not None
            with open(output, newline="", encoding="utf-8") as f:
                written = list(csv.DictReader(f))
            assert [r["id"] for r in written] == table.ids
            assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
        assert source.read_bytes() == data


@given(data=st.one_of(csv_bytes(), readable_csv_bytes()), command=st.sampled_from(["inference score", "solution.predict"]))
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_either_scoring_command_writes_every_row_or_exits_with_one_line(phrase_exported, data, command):
    """The two commands as a user runs them (in-process): exit 0 with one score per input row, or a
    non-zero exit whose first line names the input; never a traceback, never a partial output."""
    from inference.__main__ import main as inference_main
    from solution.predict import main as predict_main

    run_dir, model_dir = phrase_exported
    with scratch() as folder:
        source, output = folder / "in.csv", folder / "scores.csv"
        source.write_bytes(data)
        io_args = ["--input", str(source), "--output", str(output)]
        try:
            if command == "inference score":
                inference_main(["score", "--model", str(model_dir), "--device", "cpu", "--variant", "fp32",
                                "--runtime", "onnxruntime", "--quiet", *io_args])
            else:
                predict_main(["--run", str(run_dir), "--device", "cpu", "--precision", "fp32", *io_args])
        except SystemExit as err:
            event(f"{command}: refused")
            assert err.code not in (0, None)
            assert str(source) in one_line(err)
            assert not output.exists()
        else:
            event(f"{command}: scored")
            table = read_pairs(source, allow_empty=True)  # what was accepted reads as a table
            with open(output, newline="", encoding="utf-8") as f:
                assert [r["id"] for r in csv.DictReader(f)] == table.ids
        assert source.read_bytes() == data


@given(rows=pair_rows(), seed=st.integers(0, 2**32 - 1))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_pairs_through_the_api_score_the_same_in_any_order(scorer, rows, seed):
    """Odd but readable phrases score (finite, in [0, 1]), whatever their order in the list (rows identical in
    anchor, target and context are told apart by their id, here their position: left out)."""
    import random

    pairs = [r[1:] for r in rows]
    assume(len({(a.strip(), t.strip(), c.strip().upper()) for a, t, c in pairs}) == len(pairs))
    try:
        scores = scorer.score(pairs)
    except DataError as err:  # a lone surrogate, an empty phrase after stripping, a context like "Z99"?
        one_line(err)
        return
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    order = random.Random(seed).sample(range(len(pairs)), len(pairs))
    assert np.abs(scorer.score([pairs[i] for i in order]) - scores[order]).max() <= 1e-5


# ---- the config loader: files of any shape, and --set ----

@given(values=st.dictionaries(st.one_of(st.sampled_from(["lr", "epochs", "model", "layout", "lora_target_modules",
                                                         "budget_minutes", "sibling_orders", "loss", "folds"]), text),
                              json_values(), max_size=4),
       suffix=st.sampled_from([".json", ".yaml", ".toml"]), raw=st.one_of(st.none(), text))
def test_a_config_file_of_any_shape_is_a_config_or_one_error(values, suffix, raw):
    import yaml

    from solution.config import ConfigError, build_config
    from solution.phrase.config import PhraseTrainConfig

    with scratch() as folder:
        path = folder / f"config{suffix}"
        if raw is not None:
            path.write_bytes(encode(raw, "utf-8"))
        elif suffix == ".json":
            path.write_text(json.dumps(values), encoding="utf-8")
        elif suffix == ".yaml":
            path.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8", errors="surrogatepass")
        else:
            path.write_text("".join(f"{json.dumps(k)} = {json.dumps(v)}\n" for k, v in values.items()
                                    if not isinstance(v, dict)), encoding="utf-8")
        try:
            build_config(str(path), {}, PhraseTrainConfig)
        except (ConfigError, SystemExit) as err:
            one_line(err)


@given(key=st.sampled_from(["lr", "epochs", "model", "lora", "lora_target_modules", "budget_minutes", "layout",
                            "k2_thr", "nope"]), raw=text)
def test_a_set_option_of_any_value_is_a_config_or_one_error(key, raw):
    from solution.config import ConfigError, build_config, parse_value
    from solution.phrase.config import PhraseTrainConfig

    try:
        build_config(None, {key: parse_value(key, raw, PhraseTrainConfig)}, PhraseTrainConfig)
    except (ConfigError, SystemExit) as err:
        one_line(err)


# ---- the model folder: a manifest or its files edited, cut, swapped or pointed elsewhere ----

def linked_copy(folder: Path, into: Path) -> Path:
    """A copy whose big files are hard links (cheap); every edit below replaces a file, never writes into one."""
    target = into / folder.name
    shutil.copytree(folder, target, copy_function=os.link)
    return target


def replace_file(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)
    path.write_bytes(data)


def edit_file(target: Path, edit: str, content: bytes, keep: int) -> None:
    """``target`` replaced by ``content`` ("file"), cut to its first 1/``keep`` ("cut"), made a symlink out
    of the folder ("link") or deleted ("delete")."""
    if edit == "file":
        replace_file(target, content)
    elif edit == "cut":
        replace_file(target, target.read_bytes()[: len(target.read_bytes()) // keep])
    elif edit == "link":
        target.unlink()
        target.symlink_to("/etc/hostname")
    elif edit == "delete":
        target.unlink()
    else:
        raise AssertionError(f"unknown edit {edit!r}")


MANIFEST_KEYS = ["layout", "sibling_orders", "max_length", "pad_id", "tokenizer", "template", "cpc_vocab", "folds",
                 "variants", "inputs", "output", "files", "kind", "format_version"]
FOLDER_FILES = ["tokenizer.json", "template.json", "cpc_vocab.json", "model.fold0.onnx"]


@given(key=st.sampled_from(MANIFEST_KEYS), value=json_values(), file=st.sampled_from(FOLDER_FILES),
       content=st.one_of(json_values().map(lambda v: json.dumps(v).encode()), st.binary(max_size=64)),
       edit=st.sampled_from(["manifest", "file", "cut", "link", "delete", "extra"]), rehash=st.booleans())
def test_a_model_folder_edited_anyhow_loads_or_is_refused(phrase_exported, key, value, file, content, edit, rehash):
    with scratch() as work:
        check_model_folder_edit(linked_copy(phrase_exported[1], work), key, value, file, content, edit, rehash)


def check_model_folder_edit(folder: Path, key, value, file, content, edit, rehash) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    target = folder / file
    if edit == "manifest":
        manifest[key] = value
    elif edit != "extra":
        edit_file(target, edit, content, keep=3)
    else:  # a file the manifest does not list, named in its place where the manifest allows
        (folder / "extra.onnx").write_bytes(content)
        if isinstance(manifest.get("files"), dict) and file in manifest["files"]:
            manifest["files"]["extra.onnx"] = manifest["files"].pop(file)
            manifest["files"]["../" + file] = {"sha256": sha256_file(target), "bytes": target.stat().st_size}
    if rehash and edit not in ("delete", "extra") and isinstance(manifest.get("files"), dict) and file in manifest["files"]:
        manifest["files"][file] = {"sha256": sha256_file(target), "bytes": target.stat().st_size}
    if rehash or edit in ("manifest", "extra"):
        manifest[SELF_HASH] = self_hash(manifest)
    replace_file(folder / MANIFEST, json.dumps(manifest).encode())
    try:
        loaded = PhraseScorer.load(folder, device="cpu", variant="fp32", runtime="onnxruntime")
        scores = loaded.score([("abatement", "abatement of pollution", "A47"), ("abatement", "eliminating", "A47")])
    except SCORER_ERRORS as err:
        one_line(err)
    else:
        assert np.isfinite(scores).all()


# ---- the index: its description or files edited, and any query ----

@pytest.fixture(scope="module")
def built_index(embedder_exported, patent_corpus, tmp_path_factory) -> Path:
    from inference.retrieval.index import build_index

    out = tmp_path_factory.mktemp("fuzz-index") / "idx"
    build_index(embedder_exported[0], patent_corpus, out, chunk_size=32, progress=False)
    return out


INDEX_KEYS = ["count", "dim", "dtype", "model", "model_sha256", "files", "format_version", "complete", "variant",
              "bm25", "ann", "chunk_size", "runtime"]
INDEX_FILES = ["embeddings.npy", "ids.json", "titles.json", "index.json"]


@given(key=st.sampled_from(INDEX_KEYS), value=json_values(), file=st.sampled_from(INDEX_FILES),
       content=st.one_of(json_values().map(lambda v: json.dumps(v).encode()), st.binary(max_size=64)),
       edit=st.sampled_from(["description", "file", "cut", "link", "delete"]), rehash=st.booleans())
def test_an_index_edited_anyhow_loads_or_is_refused(built_index, key, value, file, content, edit, rehash):
    with scratch() as work:
        check_index_edit(linked_copy(built_index, work), key, value, file, content, edit, rehash)


def check_index_edit(folder: Path, key, value, file, content, edit, rehash) -> None:
    from inference.retrieval.index import INDEX_FILE, IndexMismatchError, sampled_sha256
    from inference.retrieval.ranker import PatentRanker

    info = json.loads((folder / INDEX_FILE).read_text())
    target = folder / file
    if edit == "description":
        info[key] = value
    else:
        edit_file(target, edit, content, keep=2)
    if not (file == INDEX_FILE and edit in ("file", "link", "delete")):  # else index.json itself is the edit
        if rehash and edit != "delete" and isinstance(info.get("files"), dict) and file in info["files"]:
            info["files"][file] = sha256_file(target)
            if isinstance(info.get("sampled"), dict) and file in info["sampled"]:
                info["sampled"][file] = sampled_sha256(target)
        replace_file(folder / INDEX_FILE, json.dumps(info).encode())
    try:
        ranker = PatentRanker.load(folder, ann=False)
        hits = ranker.search("drug coated balloon catheter", k=3)
    except (IndexMismatchError, ModelFolderError, DeviceError, RuntimeMissingError, ValueError, ImportError) as err:
        one_line(err)  # what `inference search` prints as "error: ..."
    else:
        assert all(np.isfinite(score) for _, score, _ in hits)


@pytest.fixture(scope="module")
def ranker(built_index):
    from inference.retrieval.ranker import PatentRanker

    return PatentRanker.load(built_index, ann=False)


@given(queries=st.lists(text, min_size=1, max_size=4), k=st.integers(-2, 200),
       hybrid=st.sampled_from([False, "rrf", "convex", "bogus"]))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_any_query_gets_hits_or_a_clear_error(ranker, queries, k, hybrid):
    try:
        results = ranker.search_batch(queries, k=k, hybrid=hybrid)
    except ValueError as err:
        one_line(err)
    else:
        assume(results)
        assert len(results) == len(queries)
        assert all(np.isfinite(score) for hits in results for _, score, _ in hits)
        assert all(len(hits) == min(k, len(ranker.ids)) for hits in results)
