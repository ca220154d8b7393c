"""NeighbourState: a neighbour list as published, and its record in the item payload."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.catalog.lists import NO_FLOOR, SCORE_TOLERANCE, NeighbourState, merged
from stream.store import Hit


def hit(key: str, score: float) -> Hit:
    return Hit(key=key, score=score, payload={"key": key})


def state(*pairs: tuple[str, float]) -> NeighbourState:
    return NeighbourState(tuple(k for k, _ in pairs), tuple(s for _, s in pairs))


# --- from_hits -------------------------------------------------------------------------------


def test_from_hits_keeps_order_and_rounds_scores_to_six_places() -> None:
    """Ids keep the search order and scores are rounded to 6 decimals (what is published)."""
    s = NeighbourState.from_hits([hit("sku-2", 0.912345678), hit("sku-9", 0.10000049)])
    assert s.ids == ("sku-2", "sku-9")
    assert s.scores == (0.912346, 0.1)


def test_from_hits_of_no_hits_is_an_empty_list() -> None:
    """No hits make an empty list, not an error."""
    assert NeighbourState.from_hits([]) == NeighbourState((), ())


# --- from_payload ----------------------------------------------------------------------------


def test_from_payload_reads_what_payload_wrote() -> None:
    """A list written with payload(k) reads back as the same list."""
    s = state(("a", 0.9), ("b", 0.5))
    assert NeighbourState.from_payload(s.payload(k=2)) == s


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"nb_ids": ["a"]},
        {"nb_scores": [0.5]},
        {"nb_ids": None, "nb_scores": None},
        {"nb_ids": "a", "nb_scores": [0.5]},
        {"nb_ids": ["a"], "nb_scores": 0.5},
        {"nb_ids": {"a": 0.5}, "nb_scores": [0.5]},
    ],
    ids=["empty", "no-scores", "no-ids", "nulls", "ids-a-string", "scores-a-number", "ids-a-dict"],
)
def test_from_payload_without_a_usable_list_is_none(payload: dict[str, Any]) -> None:
    """A payload that lacks either field, or holds something else than lists, has no list."""
    assert NeighbourState.from_payload(payload) is None


def test_from_payload_reads_ids_as_strings_and_numbers_as_floats() -> None:
    """Ids are read as strings and integer scores as floats."""
    s = NeighbourState.from_payload({"nb_ids": [7, "b"], "nb_scores": [1, 0.25]})
    assert s == NeighbourState(("7", "b"), (1.0, 0.25))


@pytest.mark.parametrize(
    "payload",
    [
        {"nb_ids": ["a", "b"], "nb_scores": [0.9, "0.25"]},
        {"nb_ids": ["a", "b"], "nb_scores": [0.9, None]},
        {"nb_ids": ["a"], "nb_scores": [True]},
        {"nb_ids": ["a", "b"], "nb_scores": [0.9]},
    ],
    ids=["score-a-string", "score-null", "score-a-bool", "lengths-differ"],
)
def test_from_payload_malformed_record_is_none(payload: dict[str, Any]) -> None:
    """A damaged record counts as no record (so the list is republished), never as a crash."""
    assert NeighbourState.from_payload(payload) is None


def test_from_payload_ignores_other_fields() -> None:
    """An item's other payload fields (title, price, floor...) do not disturb the list."""
    payload = {"title": "T", "price": 3.0, "nb_floor": 0.1, "nb_ids": ["a"], "nb_scores": [0.7]}
    assert NeighbourState.from_payload(payload) == state(("a", 0.7))


# --- same_as ---------------------------------------------------------------------------------


def test_same_as_an_identical_list() -> None:
    """The same ids and scores are the same list."""
    assert state(("a", 0.9), ("b", 0.5)).same_as(state(("a", 0.9), ("b", 0.5)))


def test_same_as_tolerates_score_noise() -> None:
    """Scores that differ by no more than the tolerance (float noise) are the same list."""
    a = state(("a", 0.9), ("b", 0.5))
    b = state(("a", 0.9 + SCORE_TOLERANCE / 2), ("b", 0.5 - SCORE_TOLERANCE / 2))
    assert a.same_as(b)
    assert b.same_as(a)


def test_scores_beyond_the_tolerance_are_a_different_list() -> None:
    """A score that moved by more than the tolerance makes the list different."""
    a = state(("a", 0.9), ("b", 0.5))
    assert not a.same_as(state(("a", 0.9), ("b", 0.5 + 10 * SCORE_TOLERANCE)))


def test_other_ids_or_order_are_a_different_list() -> None:
    """Another neighbour, a reordering, or a shorter list is a different list."""
    a = state(("a", 0.9), ("b", 0.5))
    assert not a.same_as(state(("a", 0.9), ("c", 0.5)))
    assert not a.same_as(state(("b", 0.9), ("a", 0.5)))
    assert not a.same_as(state(("a", 0.9)))


def test_nothing_published_is_never_the_same() -> None:
    """A list compared with no record (None) is different, so it gets published."""
    assert not state(("a", 0.9)).same_as(None)
    assert not NeighbourState((), ()).same_as(None)


# --- payload(k) ------------------------------------------------------------------------------


def test_payload_of_a_full_list_has_its_kth_score_as_floor() -> None:
    """With k neighbours, the floor is the k-th (lowest) score."""
    p = state(("a", 0.9), ("b", 0.7), ("c", 0.4)).payload(k=3)
    assert p == {"nb_ids": ["a", "b", "c"], "nb_scores": "0.9,0.7,0.4", "nb_floor": 0.4}


@pytest.mark.parametrize("size", [0, 1, 2])
def test_payload_of_a_short_list_has_no_floor(size: int) -> None:
    """A list shorter than k has the NO_FLOOR floor, so any item may enter it."""
    pairs = [("a", 0.9), ("b", 0.7)][:size]
    p = state(*pairs).payload(k=3)
    assert p["nb_floor"] == NO_FLOOR
    assert p["nb_ids"] == [k for k, _ in pairs]


def test_no_floor_is_below_every_cosine() -> None:
    """NO_FLOOR is lower than the lowest possible cosine similarity (-1)."""
    assert NO_FLOOR < -1.0


def test_payload_holds_plain_lists_and_packed_scores() -> None:
    """The ids are a JSON list (not a tuple: the ``nb_ids`` index needs a list); the scores are
    one string that reads back to the same floats, also for an empty list."""
    p = state(("a", 0.9), ("b", 1e-07), ("c", -0.123456)).payload(k=1)
    assert type(p["nb_ids"]) is list
    assert p["nb_scores"] == "0.9,1e-07,-0.123456"
    back = NeighbourState.from_payload(p)
    assert back is not None and back.scores == (0.9, 1e-07, -0.123456)
    empty = NeighbourState((), ()).payload(k=1)
    assert NeighbourState.from_payload(empty) == NeighbourState((), ())


@pytest.mark.parametrize("scores", ["0.9,x", "0.9", "nan", "0.9,inf"])
def test_scores_that_do_not_parse_or_match_are_no_record(scores: str) -> None:
    assert NeighbourState.from_payload({"nb_ids": ["a", "b"], "nb_scores": scores}) is None


# --- merged ----------------------------------------------------------------------------------


def test_merged_inserts_entries_in_score_order_and_keeps_k() -> None:
    """Entering items take their place by score; the list stays k long, best first."""
    old = state(("a", 0.9), ("b", 0.8), ("c", 0.7))
    new = merged(old, {"x": 0.85, "y": 0.75, "z": 0.1}, k=3)
    assert new.ids == ("a", "x", "b")
    assert new.scores == (0.9, 0.85, 0.8)


def test_merged_fills_a_short_list() -> None:
    """A list shorter than k (a small catalogue) takes every entering item."""
    new = merged(state(("a", 0.5)), {"x": 0.2, "y": 0.7}, k=5)
    assert new.ids == ("y", "a", "x")
    assert new.payload(5)["nb_floor"] == NO_FLOOR
    assert new.floor(5) == NO_FLOOR and new.floor(3) == 0.2


def test_merged_without_entries_is_the_same_list() -> None:
    old = state(("a", 0.9), ("b", 0.8))
    assert merged(old, {}, k=2).same_as(old)


def test_merged_replaces_a_recorded_item_that_enters_again() -> None:
    """An entry for an item already on the list takes its new score (no duplicate)."""
    new = merged(state(("a", 0.9), ("b", 0.8)), {"b": 0.95}, k=2)
    assert new == state(("b", 0.95), ("a", 0.9))


@given(
    scores=st.lists(st.floats(-1, 1, allow_nan=False), min_size=0, max_size=30, unique=True).map(
        lambda xs: [round(x, 6) for x in xs]
    ),
    split=st.integers(0, 30),
    k=st.integers(1, 12),
)
def test_merged_is_the_best_k_of_the_list_and_the_entries(
    scores: list[float], split: int, k: int
) -> None:
    """Against sorting everything: a recorded top-k list merged with entering items is the
    top k of both, best first, scores rounded to six places."""
    items = [(f"i{n}", s) for n, s in enumerate(scores)]
    recorded = sorted(items[:split], key=lambda p: -p[1])[:k]
    entries = dict(items[split:])
    want = sorted([*recorded, *entries.items()], key=lambda p: -p[1])[:k]
    got = merged(state(*recorded), entries, k)
    assert got.ids == tuple(i for i, _ in want)
    assert got.scores == tuple(round(s, 6) for _, s in want)


@given(
    recorded=st.lists(st.sampled_from([0.9, 0.8, 0.8, 0.5, 0.1]), max_size=12).map(
        lambda xs: sorted(xs, reverse=True)
    ),
    score=st.sampled_from([0.95, 0.9, 0.8, 0.5, 0.1, 0.05]),
    k=st.integers(1, 12),
)
def test_merged_places_one_entry_after_recorded_ties(
    recorded: list[float], score: float, k: int
) -> None:
    """One entering item (most merges), against a stable sort of everything: on a tie the
    recorded items stay ahead; the list is cut to k even when the entry does not make it."""
    items = [(f"r{n}", s) for n, s in enumerate(recorded)]
    want = sorted([*items, ("new", score)], key=lambda p: -p[1])[:k]
    got = merged(state(*items), {"new": score}, k)
    assert list(zip(got.ids, got.scores, strict=True)) == want


def test_merged_reorders_a_record_read_back_out_of_order() -> None:
    """A record read back from the store is not checked for order: one entering item gives
    what sorting everything gives, as two do."""
    out_of_order = state(("a", 0.1), ("b", 0.9))
    assert merged(out_of_order, {"n": 0.5}, k=3) == state(("b", 0.9), ("n", 0.5), ("a", 0.1))
