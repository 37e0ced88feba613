"""The Kaggle offline bundle installs with the network off (--no-index) into a fresh venv and scores a CSV."""

from __future__ import annotations

import os
import subprocess
import sys
import venv

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_bundle_installs_offline_and_scores_like_the_source(phrase_exported, small_data, tmp_path):
    _, model_dir = phrase_exported
    bundle = tmp_path / "bundle"
    env = {**os.environ, "PYTHON": sys.executable, "KAGGLE_PYTHON": f"{sys.version_info.major}.{sys.version_info.minor}"}
    subprocess.run(["bash", "scripts/kaggle_bundle.sh", str(model_dir), str(bundle)], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    readme = (bundle / "README.md").read_text()
    assert (bundle / "model" / "manifest.json").is_file() and "--no-index" in readme
    # the notebook steps with the competition's own paths, as a Kaggle user attaches the bundle
    assert "/kaggle/input/us-patent-phrase-to-phrase-matching/test.csv" in readme and "Internet off" in readme
    assert f"/kaggle/input/{bundle.name}/wheels" in readme and "/kaggle/working/submission.csv" in readme
    wheels = sorted(p.name for p in (bundle / "wheels").iterdir())
    assert any(w.startswith("patent_similarity-") for w in wheels) and any(w.startswith("onnxruntime-") for w in wheels)

    target = tmp_path / "kaggle-venv"
    venv.create(target, with_pip=True)
    python = str(target / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(bundle / "wheels"),
                    "patent-similarity[cpu]"], check=True, capture_output=True, cwd=tmp_path)
    test_csv = small_data / "uspppm" / "test.csv"
    offline, here = tmp_path / "offline.csv", tmp_path / "here.csv"
    # run outside the repository, so the installed package (not the working tree) is what scores
    subprocess.run([python, "-m", "inference", "score", "--model", str(bundle / "model"), "--input", str(test_csv),
                    "--output", str(offline)], check=True, capture_output=True, cwd=tmp_path)
    has_torch = subprocess.run([python, "-c", "import torch"], capture_output=True, cwd=tmp_path).returncode == 0
    assert not has_torch  # the bundle is the torch-free library
    # the bundle carries onnxruntime only; here "auto" may race OpenVINO bf16 in (a CPU with bf16), so pin the runtime
    subprocess.run([sys.executable, "-m", "inference", "score", "--model", str(model_dir), "--input", str(test_csv),
                    "--output", str(here), "--runtime", "onnxruntime"], check=True, capture_output=True, cwd=ROOT)
    assert offline.read_text() == here.read_text()


def test_bundle_refuses_an_existing_output(tmp_path, phrase_exported):
    (tmp_path / "out").mkdir()
    res = subprocess.run(["bash", "scripts/kaggle_bundle.sh", str(phrase_exported[1]), str(tmp_path / "out")], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 2 and "already exists" in res.stderr
