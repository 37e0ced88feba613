"""Streaming scoring (inference/phrase/stream.py): bucket by bucket, the same scores as the whole file."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inference import PhraseScorer
from inference.io import DataError, read_pairs
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def scorer(phrase_exported) -> PhraseScorer:
    return PhraseScorer.load(phrase_exported[1], device="cpu", variant="fp32", runtime="onnxruntime")


def shuffled_rows(source: Path, n: int, seed: int = 0) -> list[dict]:
    """``n`` rows drawn from ``source`` with fresh ids, groups scattered over the file."""
    with open(source, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rng = random.Random(seed)
    drawn = [dict(rng.choice(rows)) for _ in range(n)]
    for i, row in enumerate(drawn):
        row["id"] = f"r{i:06d}"
    return drawn


def write(path: Path, rows: list[dict], columns: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_bucket_by_bucket_scores_equal_the_whole_file_scored_at_once(scorer, small_data, tmp_path):
    rows = shuffled_rows(small_data / "uspppm" / "train.csv", 3000)
    source = write(tmp_path / "pairs.csv", rows, ["id", "anchor", "target", "context", "score"])
    whole = scorer.score_table(read_pairs(source))
    scored = scorer.score_file(source, tmp_path / "out.csv", rows_per_bucket=200)  # ~15 buckets
    assert np.abs(scored.scores - whole).max() <= 1e-5  # fp32 batched: exact per row up to batch-shape rounding
    with open(tmp_path / "out.csv", newline="") as f:
        written = list(csv.DictReader(f))
    assert [r["id"] for r in written] == [r["id"] for r in rows]
    assert np.abs(np.array([float(r["score"]) for r in written]) - scored.scores).max() <= 5e-7
    labels = np.array([float(r["score"]) for r in rows])
    pearson, labelled = scored.labels
    assert labelled == len(rows) and abs(pearson - np.corrcoef(whole, labels)[0, 1]) < 1e-5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the passes' files are gone


def test_stream_errors_name_the_line_before_any_scoring(scorer, small_data, tmp_path):
    rows = shuffled_rows(small_data / "uspppm" / "test.csv", 50)
    rows[30]["id"] = rows[4]["id"]
    source = write(tmp_path / "dup.csv", rows, ["id", "anchor", "target", "context"])
    with pytest.raises(DataError, match=r"dup.csv: 1 problem\(s\):\n  line 32, column 'id': duplicate id 'r000004' "
                                        r"\(first on line 6\)"):
        scorer.score_file(source, tmp_path / "out.csv", rows_per_bucket=10)
    rows[30]["id"], rows[7]["context"] = "fresh", "Z99"  # a section the model never saw
    source = write(tmp_path / "section.csv", rows, ["id", "anchor", "target", "context"])
    with pytest.raises(DataError, match="line 9, column 'context': section 'Z' is not one the model knows"):
        scorer.score_file(source, tmp_path / "out.csv", rows_per_bucket=10)
    assert not (tmp_path / "out.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dup.csv", "section.csv"]


def test_cli_reports_pearson_against_a_score_column(phrase_exported, small_data, tmp_path):
    source = write(tmp_path / "labelled.csv", shuffled_rows(small_data / "uspppm" / "train.csv", 120),
                   ["id", "anchor", "target", "context", "score"])
    proc = subprocess.run([sys.executable, "-m", "inference", "score", "--model", str(phrase_exported[1]), "--input",
                           str(source), "--output", str(tmp_path / "out.csv"), "--labels", "--json", "--quiet"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["labelled_rows"] == 120 and -1 <= summary["pearson"] <= 1


def test_scoring_holds_one_bucket_at_a_time_and_every_group_whole(scorer, small_data, tmp_path, monkeypatch):
    """Memory is bounded by a bucket, not by the file: the scorer is handed many small tables, none near
    the file's size, and each anchor+context group sits in exactly one of them (the multi layout's need)."""
    rows = shuffled_rows(small_data / "uspppm" / "train.csv", 3000, seed=1)
    for row in rows:  # ~150 groups of ~20 rows, scattered over the file (as in a real test file)
        row["anchor"] = f"{row['anchor']} {random.Random(row['id']).randrange(150)}"
    source = write(tmp_path / "pairs.csv", rows, ["id", "anchor", "target", "context"])
    seen: list[list[tuple[str, str]]] = []
    real = scorer.score_table
    monkeypatch.setattr(scorer, "score_table", lambda table, contexts=None: (
        seen.append(list(zip(table.columns["anchor"], table.columns["context"]))), real(table, contexts))[1])
    scorer.score_file(source, tmp_path / "out.csv", rows_per_bucket=200)
    assert len(seen) >= 8 and max(map(len, seen)) < len(rows) / 4
    groups_per_table = [set(t) for t in seen]
    assert sum(len(g) for g in groups_per_table) == len(set().union(*groups_per_table))  # no group split
    assert sum(map(len, seen)) == len(rows)


def test_an_interrupted_scoring_leaves_the_previous_output_and_no_scratch(scorer, small_data, tmp_path, monkeypatch):
    rows = shuffled_rows(small_data / "uspppm" / "test.csv", 400, seed=2)
    source = write(tmp_path / "pairs.csv", rows, ["id", "anchor", "target", "context"])
    output = tmp_path / "out" / "scores.csv"
    output.parent.mkdir()
    output.write_text("id,score\nprevious,0.5\n")
    calls = []

    def interrupted(table, contexts=None):
        calls.append(len(table))
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the file
        return np.zeros(len(table), dtype=np.float32)

    monkeypatch.setattr(scorer, "score_table", interrupted)
    with pytest.raises(KeyboardInterrupt):
        scorer.score_file(source, output, rows_per_bucket=50)
    assert output.read_text() == "id,score\nprevious,0.5\n"  # nothing of the new run is visible
    assert [p.name for p in output.parent.iterdir()] == ["scores.csv"]  # its buckets and temporary file are gone
