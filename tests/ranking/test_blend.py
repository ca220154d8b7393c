"""The ranking blend: eligibility (exclusions, stock, duplicates), the four components and their
normalisation, the score as their weighted sum, ordering and ties, MMR diversity, cold start."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.ranking.blend import Candidate, Ranked, Weights, best_order, rank
from stream.settings import Settings

Vec = np.ndarray[Any, np.dtype[np.float32]]
ONLY_SEMANTIC = Weights(semantic=1.0, collaborative=0.0, popularity=0.0, price=0.0)
ONLY_POPULARITY = Weights(semantic=0.0, collaborative=0.0, popularity=1.0, price=0.0)
EVEN = Weights(semantic=0.25, collaborative=0.25, popularity=0.25, price=0.25)


def unit(*values: float) -> Vec:
    v = np.asarray(values, dtype=np.float64)
    return (v / np.linalg.norm(v)).astype(np.float32)


def ids(ranked: list[Ranked]) -> list[str]:
    return [r.item_id for r in ranked]


def test_weights_come_from_the_rank_weight_settings() -> None:
    """Weights.from_settings reads rank_weight_semantic/collaborative/popularity/price/learned."""
    settings = Settings(
        rank_weight_semantic=0.4,
        rank_weight_collaborative=0.35,
        rank_weight_popularity=0.15,
        rank_weight_price=0.05,
        rank_weight_learned=0.6,
    )
    assert Weights.from_settings(settings) == Weights(0.4, 0.35, 0.15, 0.05, learned=0.6)


def test_excluded_and_out_of_stock_candidates_are_dropped() -> None:
    """An excluded id or an item out of stock never appears."""
    candidates = [
        Candidate("bought", None, popularity=9),
        Candidate("gone", None, popularity=8, in_stock=False),
        Candidate("ok", None, popularity=1),
    ]
    assert ids(rank(None, candidates, ONLY_POPULARITY, n=10, exclude={"bought"})) == ["ok"]


def test_of_duplicate_ids_the_first_candidate_is_kept() -> None:
    """A second candidate with the same id is ignored, whatever it says."""
    candidates = [
        Candidate("a", None, collaborative=1.0),
        Candidate("a", None, collaborative=5.0),
        Candidate("b", None, collaborative=2.0),
    ]
    ranked = rank(None, candidates, EVEN, n=10)
    assert ids(ranked) == ["b", "a"]
    assert ranked[1].components["collaborative"] == pytest.approx(0.5)


def test_collaborative_and_popularity_are_divided_by_the_largest_remaining() -> None:
    """Each is value / max over the eligible candidates (an excluded one does not set the max)."""
    candidates = [
        Candidate("x", None, popularity=100.0, collaborative=100.0),  # excluded
        Candidate("a", None, popularity=2.0, collaborative=3.0),
        Candidate("b", None, popularity=8.0, collaborative=0.0),
        Candidate("c", None, popularity=4.0, collaborative=6.0),
    ]
    ranked = {r.item_id: r.components for r in rank(None, candidates, EVEN, n=10, exclude={"x"})}
    assert ranked["a"]["popularity"] == pytest.approx(0.25)
    assert ranked["b"]["popularity"] == pytest.approx(1.0)
    assert ranked["c"]["popularity"] == pytest.approx(0.5)
    assert ranked["a"]["collaborative"] == pytest.approx(0.5)
    assert ranked["b"]["collaborative"] == 0.0
    assert ranked["c"]["collaborative"] == pytest.approx(1.0)


def test_an_all_zero_signal_gives_zero_components() -> None:
    """When the largest collaborative or popularity value is 0, the component is 0 for all."""
    ranked = rank(None, [Candidate("a", None), Candidate("b", None)], EVEN, n=10)
    assert all(r.components["collaborative"] == 0.0 for r in ranked)
    assert all(r.components["popularity"] == 0.0 for r in ranked)


def test_semantic_is_the_cosine_clipped_at_zero() -> None:
    """semantic = max(0, cos(profile, vector)); 0 without a vector or a profile."""
    profile = unit(1, 0, 0)
    candidates = [
        Candidate("close", unit(3, 4, 0)),
        Candidate("opposite", unit(-1, 0.5, 0)),
        Candidate("unencoded", None),
        Candidate("unnormalised", np.array([2.0, 0.0, 0.0], dtype=np.float32)),
    ]
    sem = {r.item_id: r.components["semantic"] for r in rank(profile, candidates, EVEN, n=10)}
    assert sem["close"] == pytest.approx(0.6, abs=1e-6)
    assert sem["opposite"] == 0.0
    assert sem["unencoded"] == 0.0
    assert sem["unnormalised"] == pytest.approx(1.0, abs=1e-6)
    without_profile = rank(None, candidates, EVEN, n=10)
    assert all(r.components["semantic"] == 0.0 for r in without_profile)


def test_price_is_a_gaussian_in_log_price_around_the_preference() -> None:
    """price = exp(-(ln p - pref)^2 / (2 sigma^2)); 0 without a price, a preference, or p <= 0."""
    pref = math.log(20.0)
    candidates = [
        Candidate("at-pref", None, price=20.0),
        Candidate("double", None, price=40.0),
        Candidate("free", None, price=0.0),
        Candidate("unpriced", None),
    ]
    comps = {
        r.item_id: r.components["price"]
        for r in rank(None, candidates, EVEN, n=10, price_preference=pref, price_sigma=0.5)
    }
    assert comps["at-pref"] == pytest.approx(1.0)
    assert comps["double"] == pytest.approx(math.exp(-(math.log(2) ** 2) / 0.5))
    assert comps["free"] == 0.0
    assert comps["unpriced"] == 0.0
    no_pref = rank(None, candidates, EVEN, n=10)
    assert all(r.components["price"] == 0.0 for r in no_pref)


signals = st.floats(0, 1_000, allow_nan=False)


@given(
    st.lists(
        st.tuples(
            st.lists(st.floats(-1, 1, allow_nan=False), min_size=3, max_size=3),
            signals,
            signals,
            st.none() | st.floats(0, 1_000, allow_nan=False),
            signals,
        ),
        min_size=1,
        max_size=12,
    ),
    st.tuples(signals, signals, signals, signals, signals),
)
def test_score_is_the_weighted_sum_of_components_each_in_unit_range(
    rows: list[tuple[list[float], float, float, float | None, float]],
    raw_weights: tuple[float, float, float, float, float],
) -> None:
    """For any candidates and weights: components have exactly the five keys, each in [0, 1],
    and score == sum(weight x component)."""
    weights = Weights(*raw_weights)
    candidates = [
        Candidate(f"i{k}", np.asarray(v, dtype=np.float32), pop, collab, price, learned=learned)
        for k, (v, pop, collab, price, learned) in enumerate(rows)
    ]
    ranked = rank(unit(1, 1, 0), candidates, weights, n=100, price_preference=math.log(50))
    assert len(ranked) == len(candidates)
    for r in ranked:
        assert set(r.components) == {"semantic", "collaborative", "popularity", "price", "learned"}
        assert all(0.0 <= c <= 1.0 for c in r.components.values())
        expected = (
            weights.semantic * r.components["semantic"]
            + weights.collaborative * r.components["collaborative"]
            + weights.popularity * r.components["popularity"]
            + weights.price * r.components["price"]
            + weights.learned * r.components["learned"]
        )
        assert r.score == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_order_is_by_score_then_item_id_and_at_most_n() -> None:
    """Descending score; equal scores by ascending item id; no more than n results."""
    candidates = [
        Candidate("c", None, popularity=1.0),
        Candidate("b", None, popularity=2.0),
        Candidate("a", None, popularity=1.0),
        Candidate("d", None, popularity=0.5),
    ]
    assert ids(rank(None, candidates, ONLY_POPULARITY, n=10)) == ["b", "a", "c", "d"]
    assert ids(rank(None, candidates, ONLY_POPULARITY, n=2)) == ["b", "a"]
    assert rank(None, candidates, ONLY_POPULARITY, n=0) == []
    assert rank(None, [], ONLY_POPULARITY, n=5) == []


def test_cold_start_without_a_profile_orders_by_popularity() -> None:
    """No profile: semantic is 0 and the order follows popularity; score = w_pop x pop / max."""
    candidates = [
        Candidate("p1", unit(1, 0), popularity=1.0),
        Candidate("p5", unit(0, 1), popularity=5.0),
        Candidate("p3", unit(1, 1), popularity=3.0),
    ]
    weights = Weights(semantic=0.5, collaborative=0.3, popularity=0.1, price=0.1)
    ranked = rank(None, candidates, weights, n=10)
    assert ids(ranked) == ["p5", "p3", "p1"]
    assert [r.score for r in ranked] == pytest.approx([0.1, 0.1 * 3 / 5, 0.1 * 1 / 5])


def test_mmr_prefers_a_diverse_second_item_over_a_near_duplicate() -> None:
    """With a low lambda the second pick is the distant item, not the near-copy of the first;
    with lambda 1 the near-copy (higher score) comes second."""
    profile = unit(1, 0, 0)
    best = unit(1, 0.1, 0)
    twin = unit(1, 0.12, 0)  # cos to best ~ 0.9998
    other = unit(0.6, 0, 0.8)  # cos to best ~ 0.597, score 0.6
    candidates = [Candidate("best", best), Candidate("twin", twin), Candidate("other", other)]
    assert ids(rank(profile, candidates, ONLY_SEMANTIC, n=3)) == ["best", "twin", "other"]
    # lambda 0.3, by hand: twin 0.3 x 0.993 - 0.7 x 0.9998 = -0.402 < other 0.3 x 0.6 - 0.7 x 0.597
    # = -0.238
    diverse = rank(profile, candidates, ONLY_SEMANTIC, n=2, mmr_lambda=0.3)
    assert ids(diverse) == ["best", "other"]
    # the reported score is still the relevance score, not the MMR objective
    assert diverse[1].score == pytest.approx(0.6, abs=1e-6)


def test_mmr_treats_a_missing_vector_as_unrelated_and_breaks_ties_by_item_id() -> None:
    """A candidate without a vector has similarity 0 to everything; equal objectives go by id."""
    candidates = [
        Candidate("b", None, popularity=1.0),
        Candidate("a", None, popularity=1.0),
        Candidate("c", None, popularity=0.5),
    ]
    ranked = rank(None, candidates, ONLY_POPULARITY, n=3, mmr_lambda=0.2)
    assert ids(ranked) == ["a", "b", "c"]


def test_invalid_mmr_lambda_or_price_sigma_is_refused() -> None:
    """mmr_lambda outside [0, 1] or a non-positive price_sigma raises ValueError."""
    with pytest.raises(ValueError):
        rank(None, [], EVEN, n=1, mmr_lambda=1.5)
    with pytest.raises(ValueError):
        rank(None, [], EVEN, n=1, price_sigma=0.0)


@given(
    st.lists(st.sampled_from([0.0, -0.0, 0.25, 0.5, 0.75, 1.0, math.nan]), max_size=40),
    st.integers(0, 45),
    st.randoms(use_true_random=False),
)
def test_best_order_is_lexsort_of_ids_then_scores(
    values: list[float], n: int, rnd: random.Random
) -> None:
    """Few distinct scores (ties everywhere, signed zeros, NaN) over ids in no order: the best
    ``n`` positions are lexsort's, whichever way they are found."""
    ids = [f"i{k:02d}" for k in range(len(values))]
    rnd.shuffle(ids)
    scores = np.array(values, dtype=np.float64) + np.array(
        [rnd.choice([0.0, 1e-3]) for _ in values], dtype=np.float64
    )
    want = np.lexsort((np.array(ids), -scores))[:n]
    assert best_order(scores, ids, n).tolist() == want.tolist()
