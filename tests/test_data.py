import logging

import pytest

from inference.cpc import CpcVocab
from inference.io import DataError, read_pairs, write_scores
from inference.phrase.inputs import TableContexts
from inference.template import InputTemplate, group_other_targets
from solution.phrase.data import length_bucketed_batches, load_uspppm, make_folds

HEADER = "id,anchor,target,context,score\n"


def write(tmp_path, text: str | bytes, name="train.csv"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize(
    "body, line, column, what",
    [
        ("a1,abatement,,A47,0.5\n", 2, "target", "empty"),
        ("a1,abatement,x,A47,0.5\na2,  ,y,A47,0.5\n", 3, "anchor", "empty"),
        ("a1,abatement,x,A47,0.3\n", 2, "score", "0.3"),
        ("a1,abatement,x,A47,\n", 2, "score", "''"),
        ("a1,abatement,x,A47,0.5\na1,abatement,y,A47,0.5\n", 3, "id", "duplicate"),
        ("a1,abatement,x,47A,0.5\n", 2, "context", "not a CPC class"),
    ],
)
def test_bad_rows_name_file_line_and_column(tmp_path, body, line, column, what):
    path = write(tmp_path, HEADER + body)
    with pytest.raises(DataError) as err:
        read_pairs(path, require_score=True)
    message = str(err.value)
    assert str(path) in message and f"line {line}" in message and f"column '{column}'" in message
    assert what in message


def test_missing_column_is_named(tmp_path):
    path = write(tmp_path, "id,anchor,context\na1,x,A47\n")
    with pytest.raises(DataError, match=r"missing column\(s\) 'target'"):
        read_pairs(path)


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = write(tmp_path, HEADER.encode() + b"a1,abatement,x,A47,0.5\na2,caf\xe9,y,A47,0.5\n")
    with pytest.raises(DataError, match="line 3.*not valid UTF-8"):
        read_pairs(path, require_score=True)


def test_quoted_multiline_field_keeps_line_numbers(tmp_path):
    path = write(tmp_path, HEADER + 'a1,"two\nlines",x,A47,0.5\na2,ok,,A47,0.5\n')
    with pytest.raises(DataError, match="line 4, column 'target'"):
        read_pairs(path, require_score=True)


def test_every_row_is_kept_in_order():
    from tests.conftest import DATA

    table = read_pairs(DATA / "uspppm" / "train.csv", require_score=True)
    assert len(table) == 36473
    assert table.ids[:2] == ["37d61fd2272659b1", "7b9652b17b68b7a4"]
    assert table.lines[0] == 2


def test_unknown_context_falls_back_to_section_and_warns_once_with_count(tmp_path, caplog):
    vocab = CpcVocab.from_titles({"A": "HUMAN NECESSITIES", "B": "OPERATIONS"}, {"A47": "FURNITURE"})
    path = write(tmp_path, "id,anchor,target,context\n1,a,b,A47\n2,a,c,A99\n3,a,d,B01\n", "t.csv")
    with caplog.at_level(logging.WARNING):
        encoded = TableContexts.of(read_pairs(path), vocab)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "2 row(s)" in warnings[0].getMessage()
    assert encoded.class_ids == [1, 0, 0]
    assert encoded.section_ids == [1, 1, 2]
    assert encoded.titles == ["furniture", "human necessities", "operations"]


def test_unknown_section_is_an_error_naming_the_line(tmp_path):
    vocab = CpcVocab.from_titles({"A": "HUMAN NECESSITIES"}, {"A47": "FURNITURE"})
    path = write(tmp_path, "id,anchor,target,context\n1,a,b,A47\n2,a,c,Z01\n", "t.csv")
    with pytest.raises(DataError, match="line 3, column 'context'.*'Z'"):
        TableContexts.of(read_pairs(path), vocab)


def test_template_and_grouping_exclude_the_row_itself():
    groups = group_other_targets(["a", "a", "a", "b"], ["x", "y", "z", "w"], ["A47", "A47", "B01", "A47"])
    assert groups == [["y"], ["x"], [], []]
    text = InputTemplate(sep_token="[SEP]").build("a", "x", "furniture", ["y", "q"])
    assert text == "a [SEP] x [SEP] furniture [SEP] y; q"
    assert InputTemplate(use_title=False, group_targets=False).build("a", "x", "t", ["y"]) == "a [SEP] x"


def test_folds_are_grouped_by_anchor_and_cover_every_row():
    from tests.conftest import DATA

    train, _, _ = load_uspppm(DATA)
    folds = make_folds(train, 5, 42)
    assert (folds >= 0).all()
    fold_of_anchor: dict[str, set] = {}
    for anchor, fold in zip(train.columns["anchor"], folds):
        fold_of_anchor.setdefault(anchor, set()).add(int(fold))
    assert all(len(f) == 1 for f in fold_of_anchor.values())


def test_length_buckets_cover_every_row_once():
    import random

    lengths = [random.Random(i).randint(3, 60) for i in range(1000)]
    batches = length_bucketed_batches(lengths, 32, random.Random(0))
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 10  # sorted within windows: little padding


def test_write_scores_is_atomic_and_ordered(tmp_path):
    out = tmp_path / "sub" / "submission.csv"
    write_scores(out, ["b", "a"], [0.25, 1.0])
    assert out.read_text() == "id,score\nb,0.250000\na,1.000000\n"
    with pytest.raises(ValueError):
        write_scores(out, ["b"], [float("nan")])
    assert out.read_text().startswith("id,score\nb,0.25")  # the old file survives a failed write
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_atomic_writes_get_normal_permissions(tmp_path):
    import os

    out = tmp_path / "scores.csv"
    write_scores(out, ["a"], [0.5])
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_na_none_null_are_phrases_and_ids_stay_byte_exact(tmp_path):
    """Only an empty field is missing; ids are written back exactly as read (spaces included)."""
    path = write(tmp_path, HEADER + " a1 ,NA,none,A47,0.5\na2,null,N/A,A47,0.25\na3,nan,sodium,C01,1\n")
    table = read_pairs(path, require_score=True)
    assert table.ids == [" a1 ", "a2", "a3"]
    assert table.columns["anchor"] == ["NA", "null", "nan"] and table.columns["target"] == ["none", "N/A", "sodium"]
    out = tmp_path / "out.csv"
    write_scores(out, table.ids, [0.5, 0.25, 1.0])
    assert out.read_text().splitlines()[1] == " a1 ,0.500000"


def test_a_repeated_header_column_is_refused(tmp_path):
    path = write(tmp_path, "id,anchor,target,context,anchor\na1,x,y,A47,z\n")
    with pytest.raises(DataError, match=r"line 1 \(header\): column\(s\) 'anchor' appear more than once"):
        read_pairs(path)


def test_grouped_targets_are_capped_without_changing_the_inputs():
    """Pair layout with grouped targets: each row keeps at most ``limit`` others (memory linear in the
    rows, not quadratic in a group's size); inputs cut at max_length tokens stay the same."""
    import random

    anchors, targets, contexts = ["a"] * 50 + ["b"], [f"t{i}" for i in range(51)], ["A47"] * 51
    full, capped = group_other_targets(anchors, targets, contexts), group_other_targets(anchors, targets, contexts,
                                                                                         limit=8)
    assert all(len(c) == min(8, len(f)) and c == f[: len(c)] for f, c in zip(full, capped))
    assert capped[50] == [] and "t3" not in capped[3]
    drawn = group_other_targets(anchors, targets, contexts, random.Random(0), limit=8)
    assert all(len(d) == 8 and len(set(d)) == 8 and f"t{i}" not in d for i, d in enumerate(drawn[:50]))
    template = InputTemplate(sep_token="[SEP]")
    words = 8  # a max_length of 8 tokens keeps at most 8 other targets
    cut = [" ".join(template.build(a, t, "", g).split()[:words + 4]) for a, t, g in zip(anchors, targets, full)]
    assert cut == [" ".join(template.build(a, t, "", g).split()[:words + 4]) for a, t, g in zip(anchors, targets, capped)]
