"""Bad options and bad paths are clear errors before any work, never silent zeros, tracebacks or
half-written folders (the hardening issue's CLI and API boundary items)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def cli(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("option, message", [
    (["--folds", "0"], "config error: folds=0: must be at least 1"),
    (["--set", "n_splits=1"], "config error: n_splits=1: must be at least 2"),
    (["--epochs", "-1"], "config error: epochs=-1: must be at least 1"),
    (["--set", "eval_batch_size=-1"], "config error: eval_batch_size=-1: must be at least 1"),
    (["--set", "epochs=abc"], "--set epochs=abc: expected an integer"),
    (["--set", "pooling=mean"], "every target of a multi-layout sequence the same score"),
    (["--model", "/nonexistent/model"], "config error: model '/nonexistent/model': no such folder"),
    (["--config", "/nonexistent.toml"], "config error: /nonexistent.toml: cannot read this config"),
    (["--config", "BAD_TOML"], "cannot read this config"),
    (["--set", "lora_target_modules=[q"], "not a JSON list"),
    (["--set", "lr=inf"], "config error: lr=inf: expected a finite number"),
    (["--set", "lr=nan"], "config error: lr=nan: expected a finite number"),
    (["--set", "budget_minutes=-inf"], "config error: budget_minutes=-inf: expected a finite number"),
    (["--config", "NAN_TOML"], "config error: lr=nan: expected a finite number"),
    (["--config", "MODEL_NUMBER_TOML"], "config error: layout=5: expected a string"),
    (["--config", "NESTED_TOML"], "config error: epochs={'a': {'b': {'c': {...}}}}: expected an integer"),
    (["--config", "DEEP_JSON"], "cannot read this config (RecursionError"),
    (["--config", "ALIAS_YAML"], "expected a string or a list of strings"),
    (["--config", "NUMBER_KEY_YAML"], "unknown config key(s) 1"),
])
def test_bad_training_options_are_one_line_errors_and_leave_no_run_folder(tiny_model, small_data, tmp_path, option,
                                                                          message):
    out = tmp_path / "run"
    hostile = {  # configs hostile in shape: every one a one-line error, in bounded time and memory
        "BAD_TOML": ("bad.toml", "epochs = = 3\n"),
        "NAN_TOML": ("nan.toml", "lr = nan\n"),
        "MODEL_NUMBER_TOML": ("number.toml", "layout = 5\n"),
        "NESTED_TOML": ("nested.toml", "[epochs.a.b.c]\nd = 1\n"),
        "DEEP_JSON": ("deep.json", "[" * 100_000 + "]" * 100_000),
        # a "billion laughs": nine levels of nine aliases, ~387M leaves if expanded
        "ALIAS_YAML": ("alias.yaml", "lora_target_modules: [&a0 [x, x, x, x, x, x, x, x, x], " + ", ".join(
            f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)) + "]\n"),
        "NUMBER_KEY_YAML": ("key.yaml", "1: 2\n"),
    }
    if option[-1] in hostile:
        name, text = hostile[option[-1]]
        (tmp_path / name).write_text(text)
        option = ["--config", str(tmp_path / name)]
    base = ["solution.train", "--model", str(tiny_model), "--data", str(small_data), "--out", str(out),
            "--set", "n_splits=3"]  # the small data's anchors cannot make the default's 10 grouped folds
    if option[0] == "--model":
        base = base[:1] + base[3:]
    proc = cli(*base, *option)
    assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()  # a rerun needs no --resume


def test_api_runs_validate_their_config_too(tiny_config):
    from solution.config import ConfigError
    from solution.phrase.train import run

    cfg = tiny_config(batch_size=0)
    with pytest.raises(ConfigError, match="batch_size=0: must be at least 1"):
        run(cfg)
    assert not os.path.exists(cfg.out)


def test_the_submission_never_overwrites_the_training_data(tiny_config, small_data, tmp_path):
    import shutil

    from inference.io import OutputError
    from solution.phrase.train import run

    data = tmp_path / "data"
    shutil.copytree(small_data, data)
    before = (data / "uspppm" / "train.csv").read_bytes()
    with pytest.raises(OutputError, match="is the input file"):
        run(tiny_config(data=str(data), submission=str(data / "uspppm" / "train.csv")))
    assert (data / "uspppm" / "train.csv").read_bytes() == before


def test_a_quick_run_on_few_rows_keeps_one_anchor_per_fold(tiny_config):
    """--set max_train_rows=20 (one anchor's worth) with 3 splits: whole anchors, enough for every fold."""
    from solution.phrase.train import run

    metrics = run(tiny_config(max_train_rows=20, n_splits=3, folds=1, epochs=1))
    assert metrics["folds"]["0"]["n_val"] > 0 and metrics["folds"]["0"]["n_train"] > 0


def test_fewer_anchors_than_splits_is_advice_not_a_traceback(small_data):
    from inference.io import read_pairs
    from solution.config import ConfigError
    from solution.phrase.data import make_folds

    table = read_pairs(small_data / "uspppm" / "train.csv", require_score=True)
    one_anchor = table.subset([i for i, a in enumerate(table.columns["anchor"]) if a == table.columns["anchor"][0]])
    with pytest.raises(ConfigError, match="1 anchor\\(s\\), fewer than n_splits=5.*n_splits=2 or more rows"):
        make_folds(one_anchor, 5, 0)


def test_predict_refuses_bad_batch_size_missing_run_and_its_own_input(tmp_path, small_data):
    test_csv = small_data / "uspppm" / "test.csv"
    proc = cli("solution.predict", "--run", str(tmp_path / "nope"), "--input", str(test_csv), "--output",
               str(tmp_path / "o.csv"), "--batch-size", "-1")
    assert proc.returncode == 2 and "-1 is not a positive integer" in proc.stderr
    proc = cli("solution.predict", "--run", str(tmp_path / "nope"), "--input", str(test_csv), "--output",
               str(tmp_path / "o.csv"))
    assert proc.returncode != 0 and "not a training run folder" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("solution.predict", "--run", str(tmp_path / "nope"), "--input", str(test_csv), "--output", str(test_csv))
    assert proc.returncode != 0 and "is the input file" in proc.stderr


def test_output_paths_are_checked_before_any_work(tmp_path):
    from inference.io import OutputError, check_output_path

    source = tmp_path / "in.csv"
    source.write_text("id,anchor,target,context\n")
    os.link(source, tmp_path / "hard.csv")
    for bad, why in [(source, "is the input file"), (tmp_path / "hard.csv", "is the input file"),
                     (tmp_path, "is a folder")]:
        with pytest.raises(OutputError, match=why):
            check_output_path(bad, [source])
    assert check_output_path(tmp_path / "new" / "out.csv", [source]) == tmp_path / "new" / "out.csv"
    assert source.read_text() == "id,anchor,target,context\n"


def test_inference_score_refuses_zero_batches_and_overwriting_its_input(phrase_exported, tmp_path, small_data):
    test_copy = tmp_path / "test.csv"
    test_copy.write_bytes((small_data / "uspppm" / "test.csv").read_bytes())
    model = str(phrase_exported[1])
    proc = cli("inference", "score", "--model", model, "--input", str(test_copy), "--output", str(tmp_path / "o.csv"),
               "--batch-size", "0")
    assert proc.returncode == 2 and "0 is not a positive integer" in proc.stderr
    before = test_copy.read_bytes()
    proc = cli("inference", "score", "--model", model, "--input", str(test_copy), "--output", str(test_copy))
    assert proc.returncode != 0 and "is the input file" in proc.stderr and test_copy.read_bytes() == before


def test_search_and_index_refuse_zero_k_chunks_and_blank_queries(embedder_exported, patent_corpus, tmp_path):
    from inference.retrieval import PatentRanker
    from inference.retrieval.index import build_index

    model_dir, _ = embedder_exported
    with pytest.raises(ValueError, match="chunk_size must be a positive integer, got 0"):
        build_index(model_dir, patent_corpus, tmp_path / "idx0", chunk_size=0, progress=False, bm25=False)
    assert not (tmp_path / "idx0").exists()
    build_index(model_dir, patent_corpus, tmp_path / "idx", chunk_size=32, progress=False, bm25=False)
    ranker = PatentRanker.load(tmp_path / "idx")
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        ranker.search("stent", k=0)
    with pytest.raises(ValueError, match="query 2 of 2 is empty"):
        ranker.search_batch(["stent", "  "], k=3)
    proc = cli("inference", "search", "--index", str(tmp_path / "idx"), "--query", "stent", "-k", "0")
    assert proc.returncode == 2 and "0 is not a positive integer" in proc.stderr


def test_training_on_cuda_without_cuda_is_a_config_error(tiny_config):
    import torch

    from solution.config import ConfigError
    from solution.phrase.train import run

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="device=cuda was asked for"):
        run(tiny_config(device="cuda"))


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_builds(path):
    """A preset with a misspelt key or an out-of-range value fails here, not in a user's run."""
    from solution.config import build_config
    from solution.embedder.config import EmbedderTrainConfig
    from solution.phrase.config import PhraseTrainConfig

    schema = EmbedderTrainConfig if path.name.startswith("embedder-") else PhraseTrainConfig
    cfg = build_config(str(path), {}, schema)
    if path.name in ("embedder-retrieval.toml", "embedder-classify.toml"):
        weights = cfg.loss_weights()
        assert ("cpc" in weights) == (path.name == "embedder-classify.toml") and "align" in weights and "mqg" in weights


def test_the_embedder_defaults_are_the_retrieval_preset():
    """``python -m solution.train embedder`` with no config trains what configs/embedder-retrieval.toml does;
    only the device differs (the preset pins the CPU, the default picks CUDA where there is one)."""
    from solution.config import build_config
    from solution.embedder.config import EmbedderTrainConfig

    default = build_config(None, {}, EmbedderTrainConfig).to_dict()
    preset = build_config(str(ROOT / "configs" / "embedder-retrieval.toml"), {}, EmbedderTrainConfig).to_dict()
    assert {key for key in default if default[key] != preset[key]} == {"device"}


def test_a_read_only_folder_and_a_full_disk_are_one_line_errors(phrase_exported, small_data, tmp_path, monkeypatch):
    """As root a folder cannot be made read-only and no disk fills up here, so both are injected."""
    import errno

    import inference.io
    from inference.__main__ import main as inference_main

    model_dir = phrase_exported[1]
    test_csv = small_data / "uspppm" / "test.csv"
    out = tmp_path / "scores.csv"
    out.write_text("old\n")
    score = ["score", "--model", str(model_dir), "--input", str(test_csv), "--output", str(out)]

    with monkeypatch.context() as m:
        m.setattr(inference.io.os, "access", lambda path, mode: False)
        with pytest.raises(SystemExit, match=f"error: {out}: cannot write into {tmp_path}"):
            inference_main(score)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(inference.io.os, "fsync", full)
        with pytest.raises(SystemExit, match=r"scores.csv: could not be written \(No space left on device\); "
                                             "the previous file is unchanged"):
            inference_main(score)
    assert out.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]
    inference_main(score)  # and with room again it writes
    assert out.read_text().startswith("id,score\n")
