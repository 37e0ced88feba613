"""The run folder both trainers share: open/resume rules, the one resume rule for configs, and no
import loops between the packages (every module imports alone)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest

from solution.run_folder import Clock, RunFolder, cli_config, load_checkpoint, newest_run, saved_config
from tests.conftest import ROOT


def test_a_new_run_refuses_an_existing_folder_and_resume_needs_a_state(tmp_path):
    folder = RunFolder(tmp_path / "run", kind="phrase")
    assert folder.open(resume=False) == (0.0, None)
    with pytest.raises(SystemExit, match="no run_state.json"):
        folder.open(resume=True)
    folder.save_state({"epochs": 2}, elapsed_s=30.0, metrics={"oof": 0.5})
    with pytest.raises(SystemExit, match="already holds a run"):
        folder.open(resume=False)
    assert folder.open(resume=True) == (30.0, None)  # the budget already spent carries over
    folder.save_state({"epochs": 2}, elapsed_s=40.0, complete=True, metrics={"oof": 0.7})
    assert folder.open(resume=True) == (40.0, {"oof": 0.7})  # complete: its metrics, nothing to do


def test_saved_config_changes_only_explicit_keys(tmp_path):
    RunFolder(tmp_path, kind="embedder").save_state({"epochs": 3, "budget_minutes": 42, "device": "cpu"}, 1.0)
    assert saved_config(tmp_path, {"epochs": None, "budget_minutes": 7}) == {"epochs": 3, "budget_minutes": 7,
                                                                             "device": "cpu"}


def test_newest_run_picks_the_latest_of_its_own_kind(tmp_path):
    for stamp, (name, kind) in enumerate([("p-old", "phrase"), ("p-new", "phrase"), ("e", "embedder")]):
        RunFolder(tmp_path / name, kind=kind).save_state({}, 0.0)
        os.utime(tmp_path / name / "run_state.json", (1000 + stamp, 1000 + stamp))  # "e" is the newest of all
    assert newest_run("phrase", tmp_path) == tmp_path / "p-new"
    assert newest_run("embedder", tmp_path) == tmp_path / "e"
    with pytest.raises(SystemExit, match="no other run"):
        newest_run("other", tmp_path)


def test_cli_config_resume_takes_the_saved_run_and_explicit_options(tmp_path):
    from solution.embedder.config import EmbedderTrainConfig

    saved = EmbedderTrainConfig(out=str(tmp_path / "r"), epochs=3, budget_minutes=42, device="cpu", batch_size=4)
    RunFolder(tmp_path / "r", kind="embedder").save_state(saved.to_dict(), 5.0)
    args = argparse.Namespace(resume=True, config=None, set=["lr=0.002"])
    cfg = cli_config(args, {"out": str(tmp_path / "r"), "epochs": None, "device": None}, EmbedderTrainConfig,
                     kind="embedder")
    assert (cfg.epochs, cfg.budget_minutes, cfg.device, cfg.batch_size, cfg.lr) == (3, 42, "cpu", 4, 0.002)
    fresh = cli_config(argparse.Namespace(resume=False, config=None, set=[]), {"epochs": 2}, EmbedderTrainConfig,
                       kind="embedder")
    assert (fresh.epochs, fresh.budget_minutes) == (2, 10.0)  # a new run: the defaults


def test_clock_counts_the_time_spent_before_a_resume(monkeypatch):
    import solution.run_folder as run_folder

    clock = Clock(budget_s=100.0, offset=30.0, start=1000.0)
    monkeypatch.setattr(run_folder.time, "time", lambda: 1005.0)  # 5 s later, on a fake clock
    assert (clock.elapsed(), clock.left()) == (35.0, 65.0)


def test_load_checkpoint_refuses_a_pickle(tmp_path):
    import pickle

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(pickle.dumps(argparse.Namespace(a=1)))  # an object, not tensors and plain values
    with pytest.raises(SystemExit, match="refused to load"):
        load_checkpoint(path)


def test_every_module_imports_alone():
    """No import loops: each module of the three packages imports first, in a clean package state."""
    code = """
import importlib, pkgutil, sys
names = []
for package in ("solution", "export", "inference"):
    pkg = importlib.import_module(package)
    names += [package] + [m.name for m in pkgutil.walk_packages(pkg.__path__, package + ".")]
failed = []
for name in names:
    for loaded in [m for m in sys.modules if m.split(".")[0] in ("solution", "export", "inference")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as err:
        failed.append(f"{name}: {type(err).__name__}: {err}")
print(len(names))
assert not failed, failed
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.strip()) > 40


def test_entry_points_import_in_either_order():
    for first, second in [("solution.embedder.train", "solution.train"), ("solution.train", "solution.embedder.train")]:
        subprocess.run([sys.executable, "-c", f"import {first}, {second}"], cwd=ROOT, check=True)


def test_resume_refuses_a_run_of_the_other_kind_a_folder_without_the_marker_and_a_damaged_checkpoint(tmp_path):
    RunFolder(tmp_path / "emb", kind="embedder").save_state({}, 1.0)
    with pytest.raises(SystemExit, match="holds a embedder run, not a phrase run"):
        RunFolder(tmp_path / "emb", kind="phrase").open(resume=True)
    planted = tmp_path / "mine"  # a user's folder holding a state file of the right shape, but no run marker
    planted.mkdir()
    (planted / "run_state.json").write_text(json.dumps({"kind": "phrase", "config": {}, "elapsed_s": 0,
                                                        "complete": False}))
    with pytest.raises(SystemExit, match="not created by this trainer"):
        RunFolder(planted, kind="phrase").open(resume=True)
    with pytest.raises(SystemExit, match="no phrase run"):
        newest_run("phrase", tmp_path)  # nor is it the newest run to continue
    assert [p.name for p in planted.iterdir()] == ["run_state.json"]
    (tmp_path / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SystemExit, match="damaged checkpoint"):
        load_checkpoint(tmp_path / "checkpoint.pt")
