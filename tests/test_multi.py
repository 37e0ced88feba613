"""The multi layout: chunking, span pooling, masked padding slots, lone targets, prediction order."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from inference.cpc import CpcVocab
from inference.io import read_pairs
from inference.phrase.inputs import PhraseInputs, TableContexts
from inference.phrase.multi import MultiEncoder, anchor_groups, chunk_group
from inference.template import InputTemplate
from solution.phrase.data import model_input_names, preprocessor
from tests.conftest import DATA, make_phrase_model


def multi_preprocessor(tiny_model, small_data, max_length=48, max_targets=32, use_title=True):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    template = InputTemplate(sep_token=tokenizer.sep_token, cls_token=tokenizer.cls_token, use_title=use_title,
                             layout="multi", max_targets=max_targets)
    return preprocessor(tokenizer, template, CpcVocab.from_data_dir(small_data / "cpc"), max_length)


@pytest.mark.parametrize("max_targets", [1, 2, 3, 7, 32, 100])
@pytest.mark.parametrize("shuffled", [False, True])
def test_chunks_cover_every_row_exactly_once_within_the_limits(max_targets, shuffled):
    table = read_pairs(DATA / "uspppm" / "train.csv", require_score=True).subset(range(3000))
    encoder = MultiEncoder(lambda texts: [[1] * (1 + len(t) % 5) for t in texts], cls_id=101, sep_id=102,
                           max_length=40, max_targets=max_targets)
    cols = table.columns
    rng = random.Random(0) if shuffled else None
    chunks, _ = encoder.encode(cols["anchor"], cols["target"], cols["context"], ["a title"] * len(table), rng, 0.3)
    rows = sorted(r for c in chunks for r in c.rows)
    assert rows == list(range(len(table)))
    assert all(len(c.rows) <= max_targets and len(c.ids) <= 40 for c in chunks)
    for c in chunks:  # one anchor+context per sequence, and slot k holds the k-th row's tokens
        assert len({(cols["anchor"][r], cols["context"][r]) for r in c.rows}) == 1
        assert sorted(set(c.spans) - {0}) == list(range(1, len(c.rows) + 1))
    if shuffled:  # smaller chunks happen, so a lone pair is in-distribution
        assert any(len(c.rows) < min(max_targets, 3) for c in chunks) or max_targets == 1


def test_long_targets_are_cut_never_dropped():
    encoder = MultiEncoder(lambda texts: [[5] * len(t) for t in texts], cls_id=1, sep_id=2, max_length=12, max_targets=4)
    chunks, n_cut = encoder.encode(["ab"] * 3, ["x" * 30, "y", "zz"], ["A47"] * 3, ["t"] * 3)
    assert sorted(r for c in chunks for r in c.rows) == [0, 1, 2] and n_cut == 1
    assert all(len(c.ids) <= 12 for c in chunks)


def test_chunk_group_keeps_file_order_without_rng():
    assert chunk_group([4, 5, 6, 7], [2, 2, 2, 2], budget=4, max_targets=8) == [[4, 5], [6, 7]]
    assert chunk_group([4, 5, 6], [1, 1, 1], budget=100, max_targets=2) == [[4, 5], [6]]
    assert anchor_groups(["a", "a", "b", "a"], ["X", "Y", "X", "X"]) == [[0, 3], [1], [2]]


def test_span_pooling_equals_pooling_each_target_alone(tiny_model):
    model, tokenizer = make_phrase_model(tiny_model, lora=False, pooling="pair")
    #          CLS  anchor    SEP  title SEP  t1      SEP  t2  SEP
    spans = torch.tensor([[0, 0, 0, 0, 0, 0, 1, 1, 0, 2, 0]])
    ids = torch.tensor([[2, 10, 11, 3, 12, 3, 13, 14, 3, 15, 3]])
    mask = torch.ones_like(ids)
    hidden = torch.randn(1, ids.shape[1], 32)
    pooled = model.pool(hidden, mask, ids, model.target_masks(ids, mask, spans, num_slots=2))
    alone = [hidden[0, [1, 2, 6, 7]].mean(0), hidden[0, [1, 2, 9]].mean(0)]  # anchor + that target's tokens
    assert torch.allclose(pooled[0], torch.stack(alone), atol=1e-6)
    model, _ = make_phrase_model(tiny_model, lora=False, pooling="interaction")
    feats = model.pool(hidden, mask, ids, model.target_masks(ids, mask, spans, num_slots=2))
    t, a = hidden[0, [6, 7]].mean(0), hidden[0, [1, 2]].mean(0)
    assert torch.allclose(feats[0, 0], model.interaction(torch.cat([t, a, t * a])), atol=1e-6)


def test_padding_slots_contribute_no_loss(tiny_config, tiny_model):
    from solution.phrase.step import batch_loss

    cfg = tiny_config(coral_weight=1.0)
    pred = torch.tensor([[0.2, 0.9, 0.5], [0.4, 0.1, 0.7]], requires_grad=True)
    logits = torch.randn(2, 3, 4, requires_grad=True)
    label = torch.tensor([[0.0, 1.0, 0.25], [0.5, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    out = {"score": pred, "logits": logits}
    loss = batch_loss(cfg, out, label, mask)
    loss.backward()
    assert torch.all(pred.grad[~mask] == 0) and torch.all(logits.grad[~mask] == 0)
    assert torch.all(logits.grad[mask] != 0)  # the CORAL term reaches every real slot's thresholds
    changed = label.clone()
    changed[~mask] = 0.77
    assert batch_loss(cfg, out, changed, mask).item() == pytest.approx(loss.item())


def test_the_nt_xent_batch_holds_each_anchor_once_and_the_positives_and_hard_negatives(tiny_model, small_data):
    from solution.phrase.contrastive import PhraseBank, contrastive_batch

    pre = multi_preprocessor(tiny_model, small_data, max_targets=3)  # groups split over several sequences
    table = read_pairs(small_data / "uspppm" / "train.csv", require_score=True)
    inputs = pre(table)
    cols, scores = table.columns, table.columns["score"]
    bank = PhraseBank.of(cols["anchor"], cols["target"], pre.encoder)
    idx = list(range(len(inputs)))
    sections, classes = torch.tensor(inputs.section_ids) + 100, torch.tensor(inputs.class_ids) + 200
    batch = contrastive_batch(bank, [inputs.rows[i] for i in idx], [inputs.group_ids[i] for i in idx], scores,
                              sections, classes, positive_min_score=0.75, hard_max_score=0.25)
    n = batch["n_anchors"]
    assert n == len(set(inputs.group_ids)) < len(inputs)  # one anchor per group, not one per sequence
    kept = [r for i in idx for r in inputs.rows[i] if scores[r] >= 0.75 or scores[r] <= 0.25]
    assert len(batch["target_score"]) == len(kept) and sorted(batch["target_score"].tolist()) == sorted(scores[r] for r in kept)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    texts = [tokenizer.decode(row[mask.bool()], skip_special_tokens=True)
             for row, mask in zip(batch["input_ids"], batch["attention_mask"])]
    for j, r in enumerate(kept):  # each target beside its own anchor, with the sequence's context
        g = int(batch["target_group"][j])
        assert texts[n + j] == cols["target"][r].lower() and texts[g] == cols["anchor"][r].lower()
        assert int(batch["class_ids"][n + j]) == int(batch["class_ids"][g])
    assert set(batch["class_ids"].tolist()) <= set(classes.tolist())
    assert contrastive_batch(bank, [[r] for r in kept if scores[r] <= 0.25], [0] * 2, scores, sections, classes,
                             0.75, 0.25) is None  # no positive: no pass
    n_pos = sum(scores[r] >= 0.75 for r in kept)
    args = ([inputs.rows[i] for i in idx], [inputs.group_ids[i] for i in idx], scores, sections, classes, 0.75, 0.25)
    capped = [contrastive_batch(bank, *args, max_targets=n_pos + 1, seed=s) for s in (0, 0, 1, 2, 3)]
    drawn = [str(c["input_ids"].tolist()) for c in capped]
    assert 0 < n_pos < len(kept) - 1 and drawn[0] == drawn[1]  # the same step draws the same
    assert all(len(c["target_score"]) == n_pos + 1 and int((c["target_score"] >= 0.75).sum()) == n_pos
               for c in capped)  # every positive kept, one hard negative beside them
    assert len(set(drawn)) > 1  # the hard negative is drawn, not always the first


def test_a_lone_target_scores_the_same_batched_with_padding(tiny_model, small_data):
    model, _ = make_phrase_model(tiny_model, lora=False, pooling="pair", cpc_fusion=False)
    model.eval()
    pre = multi_preprocessor(tiny_model, small_data)
    table = read_pairs(small_data / "uspppm" / "train.csv", require_score=True)
    lone = pre(table.subset([0]))  # one target: a one-slot sequence
    full = pre(table)
    longest = max(range(len(full)), key=lambda i: len(full.ids[i]))
    both = PhraseInputs(full.ids[longest : longest + 1] + lone.ids, full.type_ids[longest : longest + 1] + lone.type_ids,
                        full.spans[longest : longest + 1] + lone.spans, [full.rows[longest], [len(full.rows[longest])]],
                        [full.section_ids[longest], *lone.section_ids], [full.class_ids[longest], *lone.class_ids], [0, 1])
    assert len(both.ids[1]) < len(both.ids[0]) and len(both.rows[0]) > 1
    names = model_input_names(model, "multi")
    with torch.no_grad():
        by_itself = model(**{k: torch.from_numpy(v) for k, v in lone.feeds([0], 0, names).items()})
        batched = model(**{k: torch.from_numpy(v) for k, v in both.feeds([0, 1], 0, names).items()})
    assert by_itself.shape == (1, len(lone.ids[0]))  # one score per slot; slot 0 is the target
    assert batched[1, 0].item() == pytest.approx(by_itself[0, 0].item(), abs=1e-5)


def test_predict_keeps_ids_and_order_with_duplicated_anchors_and_unknown_contexts(tiny_config, tmp_path):
    from solution.phrase.predict import predict_file
    from solution.phrase.train import run

    cfg = tiny_config(epochs=1, layout="multi", max_targets=3)
    run(cfg)
    rows = [("z", "abatement", "abatement of pollution", "A47"), ("y", "abatement", "act of abating", "A47"),
            ("x", "abatement", "abatement of pollution", "A47"),  # the same pair twice
            ("w", "abatement", "active catalyst", "A99"),  # unknown class of a known section
            ("v", "abatement", "eliminating process", "A47"), ("u", "abatement", "forest region", "A47"),
            ("t", "adjustable", "adjustable hinge", "B25")]
    path = tmp_path / "in.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "anchor", "target", "context"])
        writer.writerows(rows)
    ids, scores = predict_file(cfg.out, path, device="cpu")
    assert ids == [r[0] for r in rows]
    assert np.all(np.isfinite(scores)) and np.all((scores >= 0) & (scores <= 1))
    contexts = TableContexts.of(read_pairs(path), CpcVocab.load(Path(cfg.out) / "cpc_vocab.json"))
    assert contexts.class_ids[3] == 0  # A99 really is unknown and fell back to its section


def test_precision_auto_keeps_fp32_where_bf16_is_slower():
    from solution.precision import resolve_precision

    assert resolve_precision("auto", "cpu", timer=lambda bf16: 0.126 if bf16 else 0.066) == "fp32"
    assert resolve_precision("auto", "cpu", timer=lambda bf16: 0.030 if bf16 else 0.066) == "bf16"
    assert resolve_precision("fp32", "cpu", timer=lambda bf16: 1 / 0) == "fp32"  # a fixed choice times nothing


def test_sibling_orders_are_text_order_then_fixed_shuffles_covering_every_row(tiny_model, small_data):
    pre = multi_preprocessor(tiny_model, small_data, max_targets=3)
    table = read_pairs(small_data / "uspppm" / "train.csv", require_score=True)
    contexts = TableContexts.of(table, pre.vocab)
    orders = pre.build_orders(table, contexts, 3)
    again = pre.build_orders(table, contexts, 3)
    assert len(orders) == 3 and orders[0].ids == pre(table).ids  # the first order is what a plain build gives
    first = orders[0].rows[0]
    assert [table.columns["target"][r] for r in first] == sorted(table.columns["target"][r] for r in first)
    assert [o.ids for o in orders] == [o.ids for o in again]  # the same table, the same inputs: deterministic
    assert orders[1].rows != orders[0].rows and orders[2].rows != orders[1].rows  # siblings really move
    for inputs in orders:
        assert sorted(r for rows in inputs.rows for r in rows) == list(range(len(table)))
    with pytest.raises(ValueError, match="orders must be >= 1"):
        pre.build_orders(table, contexts, 0)


@pytest.mark.parametrize("layout", ["multi", "pair"])
def test_a_rows_sequences_depend_on_its_own_group_alone_not_on_the_files_row_order(tiny_model, small_data, layout):
    """Each row's token sequence (and its slot in it) in every sibling order is the same with the file's
    rows shuffled: the orders are built from each group's own text, not from where its rows stand."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    template = InputTemplate(sep_token=tokenizer.sep_token, cls_token=tokenizer.cls_token, layout=layout,
                             group_targets=True, max_targets=3)
    pre = preprocessor(tokenizer, template, CpcVocab.from_data_dir(small_data / "cpc"), 48)
    table = read_pairs(small_data / "uspppm" / "train.csv", require_score=True)

    def sequence_of_each_row(t):
        seen = {}
        for k, inputs in enumerate(pre.build_orders(t, TableContexts.of(t, pre.vocab), 3)):
            for ids, rows in zip(inputs.ids, inputs.rows):
                for slot, r in enumerate(rows):
                    seen[k, t.ids[r]] = (tuple(ids), slot)
        return seen

    in_file_order = sequence_of_each_row(table)
    assert in_file_order == sequence_of_each_row(table.subset(random.Random(3).sample(range(len(table)), len(table))))
    assert len(in_file_order) == 3 * len(table)


def test_bare_pairs_have_one_sibling_order(tiny_model, small_data):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    template = InputTemplate(sep_token=tokenizer.sep_token, cls_token=tokenizer.cls_token, layout="pair",
                             group_targets=False)
    pre = preprocessor(tokenizer, template, CpcVocab.from_data_dir(small_data / "cpc"), 48)
    table = read_pairs(small_data / "uspppm" / "train.csv", require_score=True)
    assert len(pre.build_orders(table, TableContexts.of(table, pre.vocab), 4)) == 1
    grouped = preprocessor(tokenizer, InputTemplate(sep_token=tokenizer.sep_token, cls_token=tokenizer.cls_token,
                                                    layout="pair", group_targets=True), pre.vocab, 48)
    assert len(grouped.build_orders(table, TableContexts.of(table, pre.vocab), 4)) == 4  # other targets appended


def test_validation_and_predict_average_the_same_sibling_orders(tiny_config, tmp_path):
    """With sibling_orders=3 the fold's out-of-fold scores are the mean over 3 orders (its file-order
    Pearson kept beside), and solution.predict on the same rows reproduces them."""
    import json

    from solution.phrase.predict import predict_file
    from solution.phrase.train import run

    cfg = tiny_config(epochs=1, layout="multi", max_targets=3, sibling_orders=3, folds=1, lora=False,
                      contrastive_weight=0.0)
    metrics = run(cfg)
    fold = metrics["folds"]["0"]
    assert "val_pearson_first_order" in fold and fold["val_pearson"] != fold["val_pearson_first_order"]
    with open(Path(cfg.out) / "oof.csv", newline="") as f:
        oof = list(csv.DictReader(f))
    path = tmp_path / "val.csv"
    with open(path, "w", newline="") as f:  # the fold's rows in file order: the same groups and shuffles
        writer = csv.writer(f)
        writer.writerow(["id", "anchor", "target", "context"])
        writer.writerows([r["id"], r["anchor"], r["target"], r["context"]] for r in oof)
    ids, scores = predict_file(cfg.out, path, device="cpu")
    assert ids == [r["id"] for r in oof]
    assert np.abs(scores - np.array([float(r["pred"]) for r in oof])).max() < 1e-5
    _, one_order = predict_file(cfg.out, path, device="cpu", orders=1)
    assert np.abs(one_order - scores).max() > 1e-4  # the orders really were averaged
    assert json.loads((Path(cfg.out) / "config.json").read_text())["sibling_orders"] == 3


def test_a_fold_the_clock_will_cut_keeps_the_test_orders_and_scores_validation_in_file_order(tiny_config, small_data,
                                                                                            monkeypatch):
    """When the clock will stop training early, the validation's extra sibling orders give their time to
    training; the submission still averages every order."""
    from solution.phrase import train as train_module
    from solution.phrase.predict import predict_file

    monkeypatch.setattr(train_module.FoldBudget, "cuts_training", lambda self, step, epoch, step_s: True)
    rows = small_data / "uspppm" / "train.csv"  # as test rows: groups with siblings to order
    cfg = tiny_config(epochs=1, layout="multi", max_targets=3, sibling_orders=3, folds=1, batch_size=2, lora=False,
                      contrastive_weight=0.0, test_csv=str(rows))
    fold = train_module.run(cfg)["folds"]["0"]
    assert fold["val_sibling_orders"] == 1 and "val_pearson_first_order" not in fold
    assert fold["val_pearson"] == fold["epochs"][-1]["val_pearson"]
    with open(cfg.submission, newline="") as f:
        submitted = np.array([float(r["score"]) for r in csv.DictReader(f)])
    _, scores = predict_file(cfg.out, rows, device="cpu")
    _, one_order = predict_file(cfg.out, rows, device="cpu", orders=1)
    assert np.abs(scores - submitted).max() < 1e-5 and np.abs(one_order - submitted).max() > 1e-4
