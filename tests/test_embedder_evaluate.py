"""The embedder evaluation table (IR, classification, clustering, phrases) on a tiny run."""

from __future__ import annotations

import pytest


def test_evaluate_table(embedder_run, small_data, patent_corpus):
    from solution.embedder.evaluate import EvalOptions, run_evaluation

    opts = EvalOptions(corpus=str(patent_corpus), phrases=str(small_data / "uspppm" / "train.csv"), max_patents=5,
                       max_phrase_groups=5, max_length=48)
    report = run_evaluation(str(embedder_run[0]), None, opts)
    # 5 of the 12 held-out patents are queries, searched among all 60; labels use all 12
    assert (report["n_heldout_scored"], report["n_heldout"], report["n_searched"]) == (5, 12, 60)
    systems = set(report["results"])
    assert {"zero-shot", "bm25"} <= systems and any(s.startswith("hybrid-rrf") for s in systems)
    run_row = report["results"]["combined:combined"]
    for key in ("title2abstract", "queries:misspelled", "classification_macro_f1", "clustering_v_measure",
                "phrase_ndcg@10"):
        assert key in run_row
    assert 0.0 <= run_row["title2abstract"]["ndcg@10"] <= 1.0
    assert "| bm25 |" in report["table"]
    tfidf = report["results"]["tfidf"]  # the lexical baseline of the label metrics: no retrieval columns
    assert set(tfidf) == {"classification_macro_f1", "clustering_v_measure"} and "| tfidf | - |" in report["table"]
    assert report["doc_max_length"] == 48  # as asked


def test_documents_are_cut_where_the_runs_export_cuts_them_unless_told(embedder_run, monkeypatch):
    import solution.embedder.evaluate as evaluate

    used: list[int] = []
    monkeypatch.setattr(evaluate, "torch_encoder", lambda model, tokenizer, max_length, opts: used.append(max_length))
    monkeypatch.setattr(evaluate, "evaluate_systems", lambda *args: {})
    run_dir, cfg, _ = embedder_run
    corpus = str(cfg.corpus)
    report = evaluate.run_evaluation(str(run_dir), None, evaluate.EvalOptions(corpus=corpus))
    # (query, document) tokens of the run, then of the zero-shot baseline, whose documents match the run's
    assert used == [cfg.query_max_length, cfg.max_length, 64, cfg.max_length] and report["doc_max_length"] == 48
    used.clear()
    evaluate.run_evaluation(str(run_dir), None, evaluate.EvalOptions(corpus=corpus, max_length=40))
    assert used == [cfg.query_max_length, 40, 64, 40]


def test_roles_none_scores_title_to_abstract_without_encoding_the_corpus_twice(embedder_run, monkeypatch):
    import solution.embedder.evaluate as evaluate

    real = evaluate.torch_encoder
    encoded: set[str] = set()

    def recording(model, tokenizer, max_length, opts):
        encode = real(model, tokenizer, max_length, opts)
        return lambda texts: (encoded.update(texts), encode(texts))[1]

    monkeypatch.setattr(evaluate, "torch_encoder", recording)
    run_dir, cfg, _ = embedder_run
    opts = evaluate.EvalOptions(corpus=str(cfg.corpus), phrases="", max_patents=5, query_roles=())
    report = evaluate.run_evaluation(str(run_dir), None, opts)
    patents, heldout = evaluate.heldout_patents(opts, run_dir)
    run_row = report["results"]["combined:combined"]
    assert not [task for task in run_row if task.startswith("queries:")] and report["roles_table"] == ""
    assert {"title2abstract", "classification_macro_f1"} <= set(run_row) and "| bm25 |" in report["table"]
    # the titles, every abstract, and the held-out patents' own views for the label metrics: nothing else
    expected = {p.title for p in heldout[:5]} | {p.abstract for p in patents} | {p.view(cfg.doc_view) for p in heldout}
    assert encoded == expected

    one = evaluate.run_evaluation(str(run_dir), None, evaluate.EvalOptions(
        corpus=str(cfg.corpus), phrases="", max_patents=5, query_roles=evaluate.parse_roles("keyword")), zero_shot=False)
    assert [t for t in one["results"]["combined:combined"] if t.startswith("queries:")] == ["queries:keyword"]
    with pytest.raises(SystemExit, match="unknown role"):
        evaluate.parse_roles("keyword,telepathic")


def test_a_run_loads_with_its_lora_merged_into_the_same_vectors(embedder_run):
    import numpy as np

    from solution.embedder.model import EmbedderConfig, build_encoder, encode_texts, load_run_encoder

    run_dir, cfg, _ = embedder_run
    texts = ["a stent with a drug coating", "toothbrush", "an orthopaedic implant for the knee joint"]
    merged, tok, ecfg = load_run_encoder(run_dir)
    unmerged, _, _ = load_run_encoder(run_dir, merge=False)
    assert not any("lora" in name for name, _ in merged.named_parameters())  # a plain transformer: export's form
    assert any("lora" in name for name, _ in unmerged.named_parameters())
    base, _ = build_encoder(EmbedderConfig(backbone=ecfg.backbone, lora=False))
    vec_merged, vec_unmerged, vec_base = (encode_texts(m, tok, texts, 16) for m in (merged, unmerged, base.eval()))
    np.testing.assert_allclose(vec_merged, vec_unmerged, atol=1e-5)
    assert np.abs(vec_unmerged - vec_base).max() > 1e-3  # the trained adapters are in it, not the backbone alone


def test_tfidf_vectors_separate_topics_for_the_label_evaluators():
    from solution.embedder.evaluators.classification import classification_macro_f1
    from solution.embedder.evaluators.clustering import clustering_v_measure
    from solution.embedder.evaluators.tfidf import tfidf_vectors

    texts = [f"absorbent diaper pad layer {i}" for i in range(6)] + [f"engine piston cylinder ring {i}" for i in range(6)]
    labels = ["A61F"] * 6 + ["F02B"] * 6
    x = tfidf_vectors(texts)
    assert classification_macro_f1(x, labels, folds=3) == 1.0 and clustering_v_measure(x, labels) == 1.0


def test_phrase_groups_can_be_drawn_from_one_cpc_section(small_data):
    from solution.embedder.evaluators.phrases import load_phrase_groups

    path = str(small_data / "uspppm" / "train.csv")
    every = load_phrase_groups(path, max_groups=10_000)
    in_a = load_phrase_groups(path, max_groups=10_000, context_filter=lambda c: c.startswith("A"))
    others = load_phrase_groups(path, max_groups=10_000, context_filter=lambda c: not c.startswith("A"))
    assert in_a and others and len(in_a) + len(others) == len(every)
