"""Retrieval pieces without a model: corpus validation, query generators, metrics, fusion, negatives."""

from __future__ import annotations

import math
import random
import sys

import numpy as np
import pytest

from inference.io import DataError
from inference.retrieval.bm25 import Bm25Index
from inference.retrieval.corpus import Patent, read_patents
from inference.retrieval.fusion import convex_scores, min_max, ranks_of, rrf_scores
from solution.embedder.metrics import ir_metrics, mrr_at_k, ndcg_at_k, recall_at_k
from solution.embedder.negatives import fill_random_negatives, mine_hard_negatives
from solution.embedder.queries import ROLES, OfflineQueryGenerator, cached_queries, inject_typos
from tests.conftest import ROOT, write_csv

CORPUS = ROOT / "data" / "patents" / "a61_patents.csv"
COLUMNS = ["patent_id", "patent_title", "patent_abstract", "cpc_subclasses"]


@pytest.fixture(scope="module")
def patents() -> list[Patent]:
    return read_patents(CORPUS)[:120]


# --- corpus ------------------------------------------------------------------------------------

def test_vendored_corpus_reads(patents):
    assert len(read_patents(CORPUS)) == 5335
    assert all(p.title and p.abstract and p.subclasses for p in patents)


@pytest.mark.parametrize("column", ["patent_title", "patent_abstract", "patent_id"])
def test_missing_field_names_file_line_column(tmp_path, column):
    rows = [{"patent_id": "1", "patent_title": "Stent", "patent_abstract": "A tube.", "cpc_subclasses": "A61F"},
            {"patent_id": "2", "patent_title": "Pad", "patent_abstract": "A pad.", "cpc_subclasses": "A61F"}]
    rows[1][column] = " "
    path = write_csv(tmp_path / "bad.csv", rows, COLUMNS)
    with pytest.raises(DataError) as err:
        read_patents(path)
    assert str(path) in str(err.value) and "line 3" in str(err.value) and f"'{column}'" in str(err.value)


def test_missing_column_and_duplicate_id(tmp_path):
    path = write_csv(tmp_path / "nohdr.csv", [{"patent_id": "1", "patent_title": "x"}], ["patent_id", "patent_title"])
    with pytest.raises(DataError, match="missing column.*patent_abstract"):
        read_patents(path)
    row = {"patent_id": "7", "patent_title": "t", "patent_abstract": "a", "cpc_subclasses": ""}
    path = write_csv(tmp_path / "dup.csv", [row, row], COLUMNS)
    with pytest.raises(DataError, match="line 3, column 'patent_id': duplicate id '7'"):
        read_patents(path)


def test_views():
    p = Patent("1", "Stent", "A mesh tube.", ("A61F",), "1. A stent.")
    assert p.view("title") == "Stent"
    assert p.view("title+abstract+claims") == "Stent. A mesh tube. 1. A stent."
    with pytest.raises(ValueError, match="unknown text view"):
        p.view("summary")


# --- query generation --------------------------------------------------------------------------

def test_generator_deterministic_and_every_role(patents):
    a = OfflineQueryGenerator(patents, seed=3).generate(patents)
    b = OfflineQueryGenerator(list(patents), seed=3).generate(patents)
    assert a == b
    for p in patents:
        got = {q.role: q.text for q in a if q.patent_id == p.patent_id}
        assert set(got) == set(ROLES) and all(t.strip() for t in got.values())
    other = OfflineQueryGenerator(patents, seed=4).generate(patents)
    assert [q.text for q in other if q.role == "misspelled"] != [q.text for q in a if q.role == "misspelled"]


def test_roles_differ_and_misspelled_has_typos(patents):
    queries = OfflineQueryGenerator(patents, seed=0).generate(patents)
    by = {(q.patent_id, q.role): q.text for q in queries}
    changed = 0
    for p in patents:
        assert by[(p.patent_id, "keyword")] != by[(p.patent_id, "concept")]
        clean = {by[(p.patent_id, "concept")].lower(), by[(p.patent_id, "question")].rstrip("?").lower()}
        changed += by[(p.patent_id, "misspelled")].lower() not in clean
    assert changed >= 0.9 * len(patents)  # a typo can only be missing where no word is long enough


@pytest.mark.parametrize("rate", [0.05, 0.15, 0.3])
def test_typo_rate_bounded(rate):
    rng = random.Random(0)
    text = "implantable micro fluidic device for monitoring intraocular pressure in glaucoma patients"
    words = text.split()
    for _ in range(200):
        out = inject_typos(text, rng, rate).split()
        assert len(out) == len(words)
        edited = sum(a != b for a, b in zip(words, out))
        assert 1 <= edited <= max(1, math.floor(rate * len(words)))
        assert all(a[0] == b[0] for a, b in zip(words, out))  # first letters kept


def test_query_cache_keyed_by_generator_and_prompt(tmp_path, patents):
    gen = OfflineQueryGenerator(patents[:5], seed=0)
    path = tmp_path / "q.jsonl"
    first = cached_queries(gen, patents[:5], path)
    lines = path.read_text().splitlines()
    assert len(lines) == 5 * len(ROLES) and '"generator": "offline-rules"' in lines[0] and '"prompt_version"' in lines[0]
    assert cached_queries(gen, patents[:5], path) == first
    assert len(path.read_text().splitlines()) == len(lines)  # nothing regenerated
    gen.prompt_version = "2"
    cached_queries(gen, patents[:5], path)
    assert len(path.read_text().splitlines()) == 2 * len(lines)  # a new prompt version regenerates


# --- metrics (hand-computed) ------------------------------------------------------------------

def test_metric_values_by_hand():
    ranked = ["d3", "d1", "d7", "d2"]
    qrel = {"d1": 1, "d2": 1}
    # DCG = 1/log2(3) + 1/log2(5); IDCG = 1 + 1/log2(3)
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(ranked, qrel, 10) == pytest.approx(expected)
    assert ndcg_at_k(ranked, qrel, 1) == 0.0
    assert mrr_at_k(ranked, qrel, 10) == 0.5
    assert recall_at_k(ranked, qrel, 2) == 0.5 and recall_at_k(ranked, qrel, 4) == 1.0
    # graded gains (USPPPM): linear gains, ideal order by gain
    graded = {"a": 1.0, "b": 0.5}
    assert ndcg_at_k(["b", "a"], graded, 10) == pytest.approx((0.5 + 1 / math.log2(3)) / (1 + 0.5 / math.log2(3)))


def test_ir_metrics_matrix():
    scores = np.array([[0.1, 0.9, 0.5], [0.8, 0.1, 0.3], [0.2, 0.2, 0.2]])
    qrels = [{2: 1.0}, {0: 1.0}, {}]  # the third query has no relevant doc: skipped, as in BEIR
    m = ir_metrics(scores, qrels, ks=(1, 100))
    assert m["mrr@10"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["recall@1"] == pytest.approx(0.5) and m["recall@100"] == 1.0
    assert m["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1.0) / 2)


# --- fusion ------------------------------------------------------------------------------------

def test_rrf_math():
    bm25 = np.array([5.0, 3.0, 1.0])
    dense = np.array([0.2, 0.9, 0.1])
    fused = rrf_scores([bm25, dense], k=60)
    assert fused == pytest.approx([1 / 61 + 1 / 62, 1 / 62 + 1 / 61, 1 / 63 + 1 / 63])
    assert ranks_of(np.array([1.0, 1.0, 2.0])).tolist() == [2, 3, 1]  # ties: document order
    assert rrf_scores([bm25], k=60, depth=1) == pytest.approx([1 / 61, 0, 0])


def test_convex_math():
    assert min_max(np.array([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]
    assert min_max(np.array([3.0, 3.0])).tolist() == [0.0, 0.0]
    out = convex_scores(np.array([0.0, 10.0, 5.0]), np.array([1.0, 0.0, 0.5]), alpha=0.25)
    assert out == pytest.approx([0.25, 0.75, 0.5])
    with pytest.raises(ValueError):
        convex_scores(np.zeros(2), np.zeros(2), alpha=1.5)


# --- BM25 and hard negatives -------------------------------------------------------------------

def test_hard_negatives_never_positive(patents):
    docs = [p.view("title+abstract") for p in patents]
    bm25 = Bm25Index.build(docs)
    queries = [p.title for p in patents]
    rng = random.Random(0)
    # each query's positives: itself plus a few random others (as if several patents were relevant)
    positives = [{i, *rng.sample(range(len(docs)), 3)} for i in range(len(docs))]
    for seed in (None, 1):
        mined = mine_hard_negatives(bm25, queries, positives, top_k=10, per_query=3, seed=seed)
        for negs, pos in zip(mined, positives):
            assert len(negs) <= 3 and not set(negs) & pos and len(set(negs)) == len(negs)
    filled = fill_random_negatives([[] for _ in docs], positives, len(docs), 2, seed=0)
    assert all(len(n) == 2 and not set(n) & p for n, p in zip(filled, positives))


def test_bm25_top_hit_and_save_load(tmp_path, patents):
    docs = [p.view("title+abstract") for p in patents]
    bm25 = Bm25Index.build(docs)
    idx, _ = bm25.top_k(patents[7].title, 3)
    assert 7 in idx.tolist()
    bm25.save(tmp_path / "bm25")
    again = Bm25Index.load(tmp_path / "bm25")
    assert np.allclose(again.scores("catheter balloon"), bm25.scores("catheter balloon"))
    assert again.scores("zzzz qqqq").sum() == 0


def test_bm25_stems_by_default_and_saves_its_stemmer(tmp_path):
    docs = ["drug coated balloon catheter", "coating of a knee implant", "tablet press"]
    stemmed, plain = Bm25Index.build(docs), Bm25Index.build(docs, stemmer=None)
    # "catheters" and "coatings" meet "catheter" and "coated"/"coating" only when stemmed
    assert stemmed.scores("catheters")[0] > 0 and plain.scores("catheters").sum() == 0
    assert stemmed.scores("coatings")[:2].min() > 0 and plain.scores("coatings").sum() == 0
    for name, bm25 in (("stemmed", stemmed), ("plain", plain)):
        bm25.save(tmp_path / name)
        again = Bm25Index.load(tmp_path / name)
        assert again.stemmer == bm25.stemmer
        assert np.array_equal(again.scores("catheters coatings"), bm25.scores("catheters coatings"))
    (tmp_path / "plain" / "tokenizer.json").unlink()  # saved before the stemmer was recorded: unstemmed
    assert Bm25Index.load(tmp_path / "plain").stemmer is None
    with pytest.raises(ValueError, match="stemmer 'porter'"):
        Bm25Index.build(docs, stemmer="porter")


def test_bm25_counts_word_pairs_at_their_weight_and_saves_it(tmp_path):
    import json

    # the same words, in a phrase only in the first: pairs tell them apart, words alone cannot
    docs = ["a balloon catheter with a coated stent", "a stent for the balloon of a coated catheter", "knee implant"]
    pairs, words = Bm25Index.build(docs), Bm25Index.build(docs, pair_weight=0)
    assert pairs.pair_weight == 0.35 and "balloon cathet" in pairs.retriever.vocab_dict
    assert "balloon cathet" not in words.retriever.vocab_dict
    with_pairs, alone = pairs.scores("balloon catheter"), words.scores("balloon catheter")
    assert with_pairs[0] > with_pairs[1] and alone[0] == pytest.approx(alone[1])
    heavier = Bm25Index.build(docs, pair_weight=1.0).scores("balloon catheter")
    assert heavier[0] - heavier[1] == pytest.approx((with_pairs[0] - with_pairs[1]) / 0.35, rel=1e-4)
    for name, bm25 in (("pairs", pairs), ("words", words)):
        bm25.save(tmp_path / name)
        again = Bm25Index.load(tmp_path / name)
        assert again.pair_weight == bm25.pair_weight
        assert np.array_equal(again.scores("coated balloon catheter"), bm25.scores("coated balloon catheter"))
    spec = tmp_path / "words" / "tokenizer.json"
    spec.write_text(json.dumps({"stemmer": "english", "stopwords": "project"}))  # saved before pairs existed
    assert Bm25Index.load(tmp_path / "words").pair_weight == 0
    spec.write_text(json.dumps({"stemmer": "english", "pair_weight": "yes"}))
    with pytest.raises(ValueError, match="pair_weight 'yes'"):
        Bm25Index.load(tmp_path / "words")
    with pytest.raises(ValueError, match="pair_weight must be 0 or more"):
        Bm25Index.build(docs, pair_weight=-1)


def test_bm25_index_keeps_the_k1_it_was_built_with(tmp_path):
    """The default k1 changed (1.5 -> 0.6): an index saved with the old one still scores as it did."""
    docs = ["balloon balloon balloon catheter", "balloon stent", "knee implant"]
    old, new = Bm25Index.build(docs, k1=1.5), Bm25Index.build(docs)
    assert not np.allclose(old.scores("balloon"), new.scores("balloon"))  # k1 matters for repeated terms
    old.save(tmp_path / "old")
    assert np.array_equal(Bm25Index.load(tmp_path / "old").scores("balloon"), old.scores("balloon"))


def test_bm25_stemmer_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "Stemmer", None)  # import Stemmer now raises ImportError
    with pytest.raises(ImportError, match="needs PyStemmer.*--bm25-stemmer none"):
        Bm25Index.build(["drug coated balloon"])
    assert Bm25Index.build(["drug coated balloon"], stemmer=None).scores("balloon")[0] > 0


# --- evaluation collection ---------------------------------------------------------------------

def test_searched_collection_scored_first_then_distractors(patents):
    from solution.embedder.evaluate import EvalOptions, searched_collection

    heldout = patents[100:110]
    every = searched_collection(patents, heldout, EvalOptions(distractors=-1))
    assert [p.patent_id for p in every[:10]] == [p.patent_id for p in heldout]
    assert len(every) == len(patents) and len({p.patent_id for p in every}) == len(patents)
    some = searched_collection(patents, heldout, EvalOptions(distractors=25, seed=3))
    assert len(some) == 35 and not {p.patent_id for p in some[10:]} & {p.patent_id for p in heldout}
    assert some == searched_collection(patents, heldout, EvalOptions(distractors=25, seed=3))  # seeded
    assert len(searched_collection(patents, heldout, EvalOptions(distractors=0))) == 10


def test_known_item_qrels_count_duplicate_texts():
    from solution.embedder.evaluate import known_item_qrels

    docs = ["Balloon catheter", "knee implant", "balloon catheter ", "tooth brush"]
    assert known_item_qrels(docs, 2) == [{0: 1.0, 2: 1.0}, {1: 1.0}]


def test_near_duplicates_of_a_positive_are_not_mined(patents):
    docs = [p.view("title+abstract") for p in patents]
    twin = docs[0].replace(".", " again.", 1)  # the same filing reworded by one word: a false negative
    docs.append(twin)
    bm25 = Bm25Index.build(docs)
    query, positives = [patents[0].title], [{0}]
    kept = mine_hard_negatives(bm25, query, positives, top_k=5, per_query=5)
    assert len(docs) - 1 in kept[0]  # without the texts the twin ranks among the hard negatives
    denoised = mine_hard_negatives(bm25, query, positives, top_k=5, per_query=5, docs=docs, max_overlap=0.8)
    assert len(docs) - 1 not in denoised[0] and denoised[0]
