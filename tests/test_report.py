"""report.png: written by both trainers and redrawn by the embedder evaluation, never fatal to a run."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from solution.report import REPORT_FILE, write_report


def _image(path: Path) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(path)


def _drawn_fraction(img: np.ndarray) -> float:
    """Share of pixels that are not white: a blank or nearly blank figure scores ~0."""
    return float((img[..., :3] < 0.95).any(axis=-1).mean())


def test_phrase_run_writes_a_report_with_its_curves(tiny_config):
    from solution.phrase.train import run

    cfg = tiny_config(folds=2, epochs=2)
    run(cfg)
    path = Path(cfg.out) / REPORT_FILE
    img = _image(path)
    assert img.shape[:2] == (765, 1080)  # 12 x 8.5 in at 90 dpi: the four panels
    assert _drawn_fraction(img) > 0.05
    assert not list(Path(cfg.out).glob(".*partial*"))  # written atomically


def test_a_failing_plot_never_fails_the_run(tiny_config, monkeypatch, caplog):
    from solution.phrase.train import run

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if matplotlib were not installed
    cfg = tiny_config(epochs=1)
    with caplog.at_level(logging.WARNING):
        metrics = run(cfg)
    assert np.isfinite(metrics["oof_pearson"]) and Path(cfg.submission).exists()
    assert not (Path(cfg.out) / REPORT_FILE).exists() and "no report.png" in caplog.text


def test_embedder_report_gains_the_evaluation_panels(embedder_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(embedder_run[0], run_dir)
    assert (embedder_run[0] / REPORT_FILE).exists()  # written by the training run itself
    before = _drawn_fraction(_image(write_report(run_dir)))
    roles = {f"queries:{role}": {"ndcg@10": 0.2 + 0.1 * i} for i, role in enumerate(("title", "keywords", "claim"))}
    t2a = {"title2abstract": {"recall@1": 0.3, "recall@10": 0.6, "recall@100": 0.9}}
    results = {"run": {**t2a, **roles}, "zero-shot": {**t2a, **roles}, "bm25": {**t2a, **roles}}
    (run_dir / "eval.json").write_text(json.dumps({"results": results}))
    after = _drawn_fraction(_image(write_report(run_dir)))
    assert after > before  # bars and three recall curves where the hint text was


@pytest.mark.parametrize("broken", ["metrics.json", "steps.jsonl"])
def test_unreadable_run_files_give_no_report_and_no_error(embedder_run, tmp_path, broken, caplog):
    run_dir = tmp_path / "run"
    shutil.copytree(embedder_run[0], run_dir)
    (run_dir / REPORT_FILE).unlink()
    (run_dir / broken).write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert write_report(run_dir) is None
    assert not (run_dir / REPORT_FILE).exists() and "JSONDecodeError" in caplog.text
