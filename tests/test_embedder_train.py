"""Embedder training on the tiny random BERT: run folder, resume (API and CLI), the combined CPC loss."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT


def test_training_run_folder(embedder_run):
    run_dir, cfg, metrics = embedder_run
    for name in ("embedder_config.json", "trainable_state.pt", "tokenizer/tokenizer.json", "split.json",
                 "queries.jsonl", "metrics.json", "checkpoint.pt", "steps.jsonl", "config.json"):
        assert (run_dir / name).exists(), name
    split = json.loads((run_dir / "split.json").read_text())
    assert len(split["heldout"]) == 12 and not set(split["heldout"]) & set(split["trained"])
    epochs = metrics["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert {"train_mqg", "train_align", "train_cpc"} <= set(epochs[0]) and np.isfinite(epochs[-1]["train_loss"])
    assert "val_title2abstract_ndcg@10" in epochs[-1]
    roles = {json.loads(line)["role"] for line in (run_dir / "queries.jsonl").read_text().splitlines()}
    assert roles == {"concept", "keyword", "question", "colloquial", "misspelled"}


def test_resume_guard_and_complete_run(embedder_run):
    from solution.embedder.train import run

    run_dir, cfg, metrics = embedder_run
    with pytest.raises(SystemExit, match="already holds a run"):
        run(cfg)
    assert run(cfg, resume=True)["steps"] == metrics["steps"]  # complete: nothing to do


def test_mid_epoch_resume_matches_an_uninterrupted_run(tmp_path, tiny_model, patent_corpus, monkeypatch):
    """A crash mid-epoch loses nothing: resuming from the per-step checkpoint ends with the same weights."""
    import torch

    import solution.embedder.train as train_module
    from solution.embedder.config import EmbedderTrainConfig

    def config(name: str) -> EmbedderTrainConfig:
        # no warm-up and a budget far away: the clock cannot change a learning rate between the runs
        return EmbedderTrainConfig(corpus=str(patent_corpus), recipe="mqg", model=str(tiny_model), out=str(tmp_path / name),
                                   epochs=2, budget_minutes=600, device="cpu", precision="fp32", batch_size=8,
                                   max_length=48, train_max_length=32, query_max_length=16, heldout_fraction=0.2,
                                   val_patents=0, negative_top_k=5, lr=1e-3, warmup_ratio=0.0,
                                   checkpoint_minutes=0.0)

    whole = train_module.run(config("whole"))
    real, calls = train_module.step_loss, {"n": 0}

    def crash_in_the_middle(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 9:  # batch 3 of epoch 2 (48 training patents: 6 batches per epoch)
            raise KeyboardInterrupt("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "step_loss", crash_in_the_middle)
    with pytest.raises(KeyboardInterrupt):
        train_module.run(config("crashed"))
    ckpt = torch.load(tmp_path / "crashed" / "checkpoint.pt", weights_only=True)
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (1, 2, 8)
    monkeypatch.setattr(train_module, "step_loss", real)
    resumed = train_module.run(config("crashed"), resume=True)
    assert resumed["steps"] == whole["steps"] == 12
    a = torch.load(tmp_path / "whole" / "trainable_state.pt")
    b = torch.load(tmp_path / "crashed" / "trainable_state.pt")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert any(float(a[k].abs().sum()) > 0 for k in a if "lora_B" in k)  # it embedder_run (LoRA B starts at zero)


@pytest.mark.parametrize("all_views", [True, False])
def test_combined_cpc_loss_spans_every_encoded_view(tmp_path, tiny_model, patent_corpus, monkeypatch, all_views):
    """The CPC term sees the step's queries, documents, negatives, titles and abstracts, each row
    labelled with the subclasses of the patent it came from; or only the documents when switched off."""
    import random

    import solution.embedder.losses as losses
    from inference.retrieval.corpus import read_patents
    from solution.embedder.config import EmbedderTrainConfig
    from solution.embedder.model import build_encoder
    from solution.embedder.train import TrainingData, step_loss

    cfg = EmbedderTrainConfig(corpus=str(patent_corpus), recipe="combined", model=str(tiny_model), hard_negatives=1,
                              negative_top_k=5, train_max_length=32, query_max_length=16, cpc_all_views=all_views,
                              weight_cpc=1.0, train_doc_view="")  # title+abstract documents: six distinct views
    patents = read_patents(patent_corpus)[:20]
    data = TrainingData(cfg, patents, tmp_path, corpus=patents)
    model, tokenizer = build_encoder(cfg.embedder_config())
    seen, real = {}, losses.supcon_loss

    def spy(embeddings, labels, tau):
        seen["n"], seen["labels"] = len(embeddings), labels.cpu().numpy()
        return real(embeddings, labels, tau)

    monkeypatch.setattr(losses, "supcon_loss", spy)
    idx = np.array([3, 7, 11, 15])
    step_loss(model, data, idx, cfg, cfg.loss_weights(), random.Random(0), tokenizer, "cpu", "fp32")
    negs = [data.query_negs[r][i][0] for r, i in zip([random.Random(0).choice(cfg.roles) for _ in idx], idx)]
    if all_views:  # queries, documents, query negatives, titles, abstracts, title negatives
        owners = [*idx, *idx, *negs, *idx, *idx, *(data.align_negs[i][0] for i in idx)]
    else:
        owners = list(idx)
    assert seen["n"] == len(owners)
    assert (seen["labels"] == data.labels[owners]).all()


def test_cli_resume_of_a_killed_run_keeps_its_budget_epochs_and_device(tmp_path, tiny_model, patent_corpus):
    """An embedder run started from the command line is killed after its first checkpoint, then
    resumed with ``--out RUN --resume`` and nothing else: budget, epochs and device are the run's own,
    not the defaults (10 minutes, 1 epoch, auto)."""
    out = tmp_path / "cli"
    start = [sys.executable, "-m", "solution.train", "embedder", "--corpus", str(patent_corpus), "--model",
             str(tiny_model), "--recipe", "mqg", "--out", str(out), "--epochs", "3", "--budget-minutes", "42",
             "--device", "cpu"]
    for setting in ("checkpoint_minutes=0", "batch_size=2", "val_patents=0", "precision=fp32", "max_length=32",
                    "train_max_length=16", "query_max_length=8"):
        start += ["--set", setting]
    proc = subprocess.Popen(start, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(15000):  # poll every 20 ms, for 5 minutes at most
            if (out / "checkpoint.pt").exists():  # 3 epochs of 25 steps: far from done at the first
                break
            try:
                proc.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                continue
            pytest.fail("the run ended before its first checkpoint")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not json.loads((out / "run_state.json").read_text())["complete"]

    subprocess.run([sys.executable, "-m", "solution.train", "embedder", "--out", str(out), "--resume"], cwd=ROOT,
                   check=True, capture_output=True)
    state = json.loads((out / "run_state.json").read_text())
    assert state["complete"] and state["kind"] == "embedder"
    assert (state["config"]["budget_minutes"], state["config"]["epochs"], state["config"]["device"]) == (42, 3, "cpu")
    metrics = json.loads((out / "metrics.json").read_text())
    steps_per_epoch = len(json.loads((out / "split.json").read_text())["trained"]) // 2  # batches of 2
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3] and metrics["steps"] == 3 * steps_per_epoch
    assert np.isfinite(metrics["epochs"][-1]["train_loss"])


def test_ict_role_pairs_a_sentence_with_the_rest_of_its_patent(tmp_path, tiny_model, patent_corpus, monkeypatch):
    """The ict role is drawn per step (not generated): its query is a sentence of the patent's abstract
    and its document the patent without that sentence; other roles keep the generated query and the doc."""
    import random

    import solution.embedder.losses as losses
    from inference.retrieval.corpus import read_patents
    from solution.embedder.config import EmbedderTrainConfig
    from solution.embedder.ict import sentences
    from solution.embedder.model import build_encoder
    from solution.embedder.train import TrainingData, step_loss

    cfg = EmbedderTrainConfig(corpus=str(patent_corpus), recipe="mqg", model=str(tiny_model), train_max_length=64,
                              query_max_length=32, roles=["ict", "keyword"], train_doc_view="")  # title+abstract
    patents = read_patents(patent_corpus)[:20]
    data = TrainingData(cfg, patents, tmp_path, corpus=patents)
    assert set(data.queries) == {"keyword"}
    assert {json.loads(line)["role"] for line in (tmp_path / "queries.jsonl").read_text().splitlines()} == {"keyword"}
    model, tokenizer = build_encoder(cfg.embedder_config())
    texts = []
    real_tokenizer = tokenizer

    def spy(batch, **kwargs):
        texts.append(list(batch))
        return real_tokenizer(batch, **kwargs)

    monkeypatch.setattr(losses, "mnrl_loss", lambda q, d, *a, **k: (q * d).sum())
    idx = np.arange(12)
    step_loss(model, data, idx, cfg, cfg.loss_weights(), random.Random(0), spy, "cpu", "fp32")
    queries, docs = texts[0], texts[1]
    drawn = random.Random(0)  # step_loss draws every row's role first, from the same seed
    roles = [drawn.choice(cfg.roles) for _ in idx]
    assert "ict" in roles and "keyword" in roles
    for role, i, query, doc in zip(roles, idx, queries, docs):
        if role == "ict":
            assert query in sentences(patents[i].abstract) and query not in doc and doc.startswith(patents[i].title)
        else:
            assert query == data.queries["keyword"][i] and doc == data.docs[i]


@pytest.mark.parametrize("doc_view, train_doc_view", [("abstract", ""), ("title+abstract", "abstract")])
def test_each_text_list_is_encoded_once_per_step(tmp_path, tiny_model, patent_corpus, monkeypatch, doc_view,
                                                 train_doc_view):
    """With ``queries_per_patent`` 2 every patent gets two distinct roles, both scored against one
    encoding of its document; with training documents that are the abstracts (``doc_view``, or
    ``train_doc_view`` alone, which leaves the run's own document view as it is), the alignment loss
    reuses that encoding too (one document pass per step, not three), and the CPC term sees each
    encoding once, also for an abstract that does not end in a period (its document text gains one)."""
    import dataclasses
    import random

    import solution.embedder.losses as losses
    from inference.retrieval.corpus import read_patents
    from solution.embedder.config import EmbedderTrainConfig
    from solution.embedder.model import build_encoder
    from solution.embedder.train import TrainingData, check_config, step_loss

    cfg = EmbedderTrainConfig(corpus=str(patent_corpus), recipe="combined", model=str(tiny_model), doc_view=doc_view,
                              train_doc_view=train_doc_view, train_max_length=32, query_max_length=16,
                              queries_per_patent=2, weight_cpc=1.0)
    assert cfg.embedder_config().doc_view == doc_view  # what evaluation, export and the index embed
    patents = read_patents(patent_corpus)[:20]
    patents[3] = dataclasses.replace(patents[3], abstract=patents[3].abstract.rstrip(". ") + " ")
    data = TrainingData(cfg, patents, tmp_path, corpus=patents)
    model, tokenizer = build_encoder(cfg.embedder_config())
    texts, pairs, cpc_rows = [], [], []

    def spy_tokenizer(batch, **kwargs):
        texts.append(list(batch))
        return tokenizer(batch, **kwargs)

    def spy_mnrl(q, d, *args, **kwargs):
        pairs.append((q, d))
        return (q * d).sum()

    monkeypatch.setattr(losses, "mnrl_loss", spy_mnrl)
    monkeypatch.setattr(losses, "supcon_loss", lambda e, labels, tau: cpc_rows.append(len(e)) or e.sum())
    idx = np.arange(8)
    step_loss(model, data, idx, cfg, cfg.loss_weights(), random.Random(0), spy_tokenizer, "cpu", "fp32")
    abstracts = [patents[i].view("abstract") for i in idx]
    assert texts.count(abstracts) == 1 and len(texts) == 4  # queries x 2, abstracts, titles
    first, second = texts[0], texts[2]
    by_role = {r: data.queries[r] for r in cfg.roles}
    for i, q1, q2 in zip(idx, first, second):  # two different roles' queries of the same patent
        roles = [{r for r in cfg.roles if by_role[r][i] == q} for q in (q1, q2)]
        assert roles[0] and roles[1] and roles[0] != roles[1]
    assert len(pairs) == 3 and pairs[0][1] is pairs[1][1] is pairs[2][1]  # one document tensor for all three losses
    assert cpc_rows == [4 * len(idx)]  # queries x 2, abstracts, titles: no encoding counted twice
    with pytest.raises(ValueError, match="queries_per_patent 6"):
        check_config(EmbedderTrainConfig(recipe="mqg", queries_per_patent=6))


def test_mining_gets_the_texts_and_the_near_duplicate_limit(tmp_path, tiny_model, patent_corpus, monkeypatch):
    import solution.embedder.negatives as negatives
    from inference.retrieval.corpus import read_patents
    from solution.embedder.config import EmbedderTrainConfig
    from solution.embedder.train import TrainingData

    calls, real = [], negatives.mine_hard_negatives

    def spy(bm25, queries, positives, *args, **kwargs):
        calls.append(kwargs)
        return real(bm25, queries, positives, *args, **kwargs)

    monkeypatch.setattr(negatives, "mine_hard_negatives", spy)
    cfg = EmbedderTrainConfig(corpus=str(patent_corpus), recipe="combined", model=str(tiny_model), hard_negatives=1,
                              negative_top_k=5, negative_max_overlap=0.7)
    patents = read_patents(patent_corpus)[:20]
    data = TrainingData(cfg, patents, tmp_path, corpus=patents)
    searched = [c["docs"] for c in calls]
    assert all(c["max_overlap"] == 0.7 for c in calls) and len(calls) == len(data.queries) + 1  # each role + align
    assert all(d == data.docs for d in searched[:-1]) and searched[-1] == data.abstracts


def test_a_budget_too_short_for_the_steps_is_said_once_and_kept_in_metrics(caplog):
    from types import SimpleNamespace

    from solution.embedder.train import warn_if_budget_short

    def six_steps_in():  # 100 s left on a 10-minute clock
        return SimpleNamespace(clock=SimpleNamespace(left=lambda: 100.0), step=6, metrics={},
                               cfg=SimpleNamespace(budget_minutes=10.0))

    # 100 s left, 3 s to validate, 10 s margin: 87 s of training for 50 steps of 2 s (100 s)
    run = six_steps_in()
    with caplog.at_level("WARNING", logger="solution.embedder.train"):
        warn_if_budget_short(run, step_s=2.0, total_steps=56, val_cost_s=3.0)
    assert run.metrics["budget_warning"] == ("at 30.0 steps/min the clock stops training at step ~49 of 56; "
                                             "--budget-minutes 11 would fit them all")
    assert caplog.records[-1].getMessage() == run.metrics["budget_warning"]
    fits = six_steps_in()
    warn_if_budget_short(fits, step_s=1.5, total_steps=56, val_cost_s=3.0)  # 75 s of 87
    assert fits.metrics == {}


def test_the_budget_forecast_runs_once_after_the_first_steps(tmp_path, tiny_model, patent_corpus, monkeypatch):
    import solution.embedder.train as train_module
    from solution.embedder.config import EmbedderTrainConfig

    calls = []
    monkeypatch.setattr(train_module, "warn_if_budget_short",
                        lambda run, step_s, total_steps, val_cost_s: calls.append((run.step, step_s, total_steps)))
    cfg = EmbedderTrainConfig(corpus=str(patent_corpus), recipe="mqg", model=str(tiny_model), out=str(tmp_path / "r"),
                              epochs=2, budget_minutes=600, device="cpu", precision="fp32", batch_size=8, max_length=48,
                              train_max_length=32, query_max_length=16, heldout_fraction=0.2, val_patents=0,
                              negative_top_k=5, lr=1e-3)
    metrics = train_module.run(cfg)
    # 48 training patents, 6 steps per epoch: timed over steps 2-6 of the first epoch, never again
    assert [(step, total) for step, _, total in calls] == [(6, 12)] and calls[0][1] > 0
    assert "budget_warning" not in metrics


def test_dropout_setting_switches_off_the_backbones_dropout_but_not_loras(tiny_model):
    """dropout=0 (the default) sets every backbone dropout (hidden, attention) to 0 for training, so a
    training-mode forward pass is deterministic; -1 keeps the backbone's own 0.1; LoRA keeps its lora_dropout."""
    import torch

    from solution.embedder.config import EmbedderTrainConfig
    from solution.embedder.model import build_encoder

    def dropout_rates(model, lora: bool) -> set[float]:
        return {m.p for name, m in model.named_modules() if isinstance(m, torch.nn.Dropout) and ("lora" in name) == lora}

    own, tokenizer = build_encoder(EmbedderTrainConfig(model=str(tiny_model), dropout=-1.0).embedder_config())
    off, _ = build_encoder(EmbedderTrainConfig(model=str(tiny_model), dropout=0.0, lora_dropout=0.2).embedder_config())
    assert dropout_rates(own, lora=False) == {0.1} and dropout_rates(off, lora=False) == {0.0}
    assert dropout_rates(off, lora=True) == {0.2}
    enc = tokenizer(["a b c", "b c"], padding=True, return_tensors="pt")
    no_masks, _ = build_encoder(EmbedderTrainConfig(model=str(tiny_model)).embedder_config())
    for encoder, deterministic in ((no_masks.train(), True), (own.train(), False)):
        first, second = (encoder(enc["input_ids"], enc["attention_mask"]) for _ in range(2))
        assert torch.equal(first, second) is deterministic
