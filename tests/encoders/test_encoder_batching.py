"""plan_batches and plan_by_cost: how one encode call is split into forward passes under a
token budget (the CUDA plan fills it; the CPU plan is checked against every split there is)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from encoders.batching import plan_batches, plan_by_cost


def padded_cost(batch: list[int], lengths: list[int]) -> int:
    return max(lengths[i] for i in batch) * len(batch)


def test_empty_input_gives_no_batches() -> None:
    """No texts, no forward passes."""
    assert plan_batches([], 100) == []


def test_sorts_longest_first() -> None:
    """Indices come out by length, descending, so each batch pads little."""
    lengths = [3, 10, 7, 1]
    assert [i for b in plan_batches(lengths, 1_000) for i in b] == [1, 2, 0, 3]


def test_groups_under_padded_budget() -> None:
    """A batch closes when its longest text times its size would pass the budget."""
    lengths = [10, 10, 10, 4, 4, 4, 4]
    # 10 x 3 = 30 fits in 32; then 4 x 7 would not fit with the 10s, so the 4s start a batch.
    assert plan_batches(lengths, 32) == [[0, 1, 2], [3, 4, 5, 6]]


def test_over_budget_text_travels_alone() -> None:
    """A text longer than the whole budget still gets encoded, in a batch of its own."""
    assert plan_batches([500, 5, 5], 100) == [[0], [1, 2]]


def test_equal_lengths_keep_input_order() -> None:
    """Ties keep input order, so the plan is deterministic."""
    assert plan_batches([4, 4, 4, 4], 8) == [[0, 1], [2, 3]]


def test_rejects_non_positive_budget() -> None:
    """A budget below one token is a programming error, reported as ValueError."""
    with pytest.raises(ValueError, match="max_tokens"):
        plan_batches([1], 0)
    with pytest.raises(ValueError, match="max_tokens"):
        plan_by_cost([1], 0, 36.0)


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=512), max_size=200),
    max_tokens=st.integers(min_value=1, max_value=10_000),
)
def test_plan_properties(lengths: list[int], max_tokens: int) -> None:
    """Every index once; sorted by length; each batch within budget or alone; batches are
    full: the next batch's first text would break the budget."""
    batches = plan_batches(lengths, max_tokens)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    for batch in batches:
        assert batch
        assert len(batch) == 1 or padded_cost(batch, lengths) <= max_tokens
    for batch, following in itertools.pairwise(batches):
        assert padded_cost([*batch, following[0]], lengths) > max_tokens


def plan_cost(batches: list[list[int]], lengths: list[int], pass_tokens: float) -> float:
    return sum(pass_tokens + padded_cost(b, lengths) for b in batches)


def cheapest(lengths: list[int], max_tokens: int, pass_tokens: float) -> float:
    """The least cost of any split of the texts, sorted longest first, into runs within the
    budget (or alone): every one of the 2^(n-1) splits tried."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    least = float("inf")
    for cuts in itertools.product((False, True), repeat=max(0, len(order) - 1)):
        batches, current = [], [order[0]] if order else []
        for index, cut in zip(order[1:], cuts, strict=True):
            if cut:
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)
        if all(len(b) == 1 or padded_cost(b, lengths) <= max_tokens for b in batches):
            least = min(least, plan_cost(batches, lengths, pass_tokens))
    return least if order else 0.0


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=80), max_size=9),
    max_tokens=st.integers(min_value=1, max_value=400),
    pass_tokens=st.sampled_from([0.0, 1.0, 36.0, 500.0]),
)
def test_cost_plan_is_the_cheapest_split(
    lengths: list[int], max_tokens: int, pass_tokens: float
) -> None:
    """Every index once, longest first, each batch within budget or alone, and no split of the
    sorted texts costs less (passes x pass_tokens + padded tokens), by exhaustive search."""
    batches = plan_by_cost(lengths, max_tokens, pass_tokens)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    assert all(b and (len(b) == 1 or padded_cost(b, lengths) <= max_tokens) for b in batches)
    assert plan_cost(batches, lengths, pass_tokens) == pytest.approx(
        cheapest(lengths, max_tokens, pass_tokens)
    )


def test_cost_plan_joins_short_texts_and_splits_long_ones() -> None:
    """Product names of 9-20 tokens run as one pass at 36 tokens a pass; texts of 100 and ~40
    tokens as two (one pass: 36 + 5 x 100 = 536; two: 36 + 100 + 36 + 4 x 41 = 336); a text
    over the budget alone."""
    names = [12, 20, 9, 15, 17, 11, 14, 10]
    assert plan_by_cost(names, 1_024, 36.0) == [[1, 4, 3, 6, 0, 5, 7, 2]]
    assert plan_by_cost([100, 40, 41, 39, 40], 1_024, 36.0) == [[0], [2, 1, 4, 3]]
    assert plan_by_cost([2_000, 5, 5], 1_024, 36.0) == [[0], [1, 2]]
    assert plan_by_cost([], 1_024, 36.0) == []
    with pytest.raises(ValueError, match="pass_tokens"):
        plan_by_cost([1], 100, -1.0)
