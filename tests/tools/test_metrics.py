"""Top-k metrics with binary relevance, checked against values computed by hand."""

from __future__ import annotations

import math

import pytest

from recstream_tools.evaluation.metrics import hit_rate, mean_over_users, ndcg, recall


def test_hit_rate_counts_any_truth_item_within_k() -> None:
    """A hit at rank 2 counts for k=2 and not for k=1; no truth item in the list is a miss."""
    assert hit_rate(["x", "a"], {"a"}, 1) == 0.0
    assert hit_rate(["x", "a"], {"a"}, 2) == 1.0
    assert hit_rate(["x", "y"], {"a"}, 10) == 0.0
    assert hit_rate([], {"a"}, 10) == 0.0


def test_recall_is_the_share_of_the_truth_in_the_top_k() -> None:
    """Two of four truth items in the top 3 is 0.5; one in the top 1 is 0.25; no truth is 0."""
    truth = {"a", "b", "c", "d"}
    assert recall(["a", "x", "c"], truth, 3) == 0.5
    assert recall(["a", "x", "c"], truth, 1) == 0.25
    assert recall(["a"], set(), 10) == 0.0


def test_ndcg_discounts_by_log2_of_rank_plus_one() -> None:
    """Hits at ranks 1 and 3 of truth {a, b}: (1 + 1/2) / (1 + 1/log2 3) = 0.919720..."""
    value = ndcg(["a", "x", "b"], {"a", "b"}, 3)
    assert value == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert value == pytest.approx(0.9197207891)


def test_ndcg_of_a_single_hit_at_rank_two() -> None:
    """One truth item found at rank 2: 1/log2(3) = 0.630930 (the ideal puts it at rank 1)."""
    assert ndcg(["x", "a"], {"a"}, 2) == pytest.approx(0.6309297536)


def test_ndcg_ideal_is_capped_at_k() -> None:
    """Three truth items and k=2: two hits at the top are a perfect score, not 2/3 of one."""
    assert ndcg(["a", "b", "x"], {"a", "b", "c"}, 2) == pytest.approx(1.0)


def test_ndcg_ignores_hits_below_k_and_repeated_items() -> None:
    """A hit at rank 3 does not count for k=2; a repeated item is one hit, not two."""
    assert ndcg(["x", "y", "a"], {"a"}, 2) == 0.0
    assert ndcg(["a", "a"], {"a", "b"}, 2) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert ndcg(["a"], set(), 10) == 0.0


def test_mean_over_users_averages_every_user_with_a_truth() -> None:
    """A hit, a miss and a user without any list average to 1/3."""
    ranked = {"u1": ["a"], "u2": ["x"]}
    truth = {"u1": {"a"}, "u2": {"b"}, "u3": {"c"}}
    assert mean_over_users(hit_rate, ranked, truth, 10) == pytest.approx(1 / 3)
    assert mean_over_users(hit_rate, ranked, {}, 10) == 0.0
