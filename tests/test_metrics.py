"""Ranking and answer metrics against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from eval.metrics import answer_token_recall, mean, ndcg_at_k, recall_at_k, reciprocal_rank

RANKED = ["d3", "d1", "d7", "d2", "d9"]
QRELS = {"d1": 1, "d2": 1, "d5": 1}


def test_recall_counts_relevant_ids_found_within_k():
    assert recall_at_k(RANKED, QRELS, 1) == 0.0
    assert recall_at_k(RANKED, QRELS, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RANKED, QRELS, 5) == pytest.approx(2 / 3)  # d5 is never retrieved
    assert recall_at_k(RANKED, {}, 5) == 0.0
    assert recall_at_k(RANKED, {"d3": 0}, 5) == 0.0  # grade 0 is not relevant


def test_duplicates_count_once_at_their_first_position():
    # two passages of one document: the document's second appearance must not push others out of the top k
    assert recall_at_k(["d1", "d1", "d2"], QRELS, 2) == pytest.approx(2 / 3)
    assert reciprocal_rank(["d3", "d3", "d1"], QRELS) == pytest.approx(1 / 2)


def test_reciprocal_rank_is_one_over_first_relevant_position_within_k():
    assert reciprocal_rank(RANKED, QRELS) == pytest.approx(0.5)
    assert reciprocal_rank(["d1"], QRELS) == 1.0
    assert reciprocal_rank([f"x{i}" for i in range(10)] + ["d1"], QRELS, k=10) == 0.0  # rank 11


def test_ndcg_matches_a_hand_computed_value():
    # gains at ranks 2 and 4; ideal puts three relevant ids at ranks 1..3
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(RANKED, QRELS, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(["d1", "d2", "d5"], QRELS, 10) == pytest.approx(1.0)


def test_ndcg_uses_graded_relevance():
    graded = {"a": 2, "b": 1}
    worse_first = ndcg_at_k(["b", "a"], graded, 10)
    ideal_dcg = 2 + 1 / math.log2(3)
    assert worse_first == pytest.approx((1 + 2 / math.log2(3)) / ideal_dcg)
    assert ndcg_at_k(["a", "b"], graded, 10) == pytest.approx(1.0)


def test_answer_token_recall_takes_the_best_answer_and_ignores_stop_words_and_case():
    passages = ["Total sales were $1,496.5 million in 2019.", "Other text"]
    assert answer_token_recall(passages, ["$1,496.5"]) == 1.0  # tokens 1 and 496 both present
    assert answer_token_recall(passages, ["The total of 2018"]) == pytest.approx(1 / 2)  # total yes, 2018 no
    assert answer_token_recall(passages, ["2017 only", "TOTAL SALES"]) == 1.0
    assert answer_token_recall(passages, []) == 0.0
    assert answer_token_recall([], ["anything"]) == 0.0


def test_mean_of_nothing_is_unknown():
    assert mean([]) is None  # eval reports "unknown", never a made-up 0
    assert mean([1.0, 0.0]) == 0.5
