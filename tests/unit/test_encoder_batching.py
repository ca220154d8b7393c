"""plan_batches: how one encode call is split into forward passes under a token budget."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from encoders.batching import plan_batches


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


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=512), max_size=200),
    max_tokens=st.integers(min_value=1, max_value=10_000),
)
def test_plan_properties(lengths: list[int], max_tokens: int) -> None:
    """Every index once; sorted by length; each batch within budget or alone; batches are full."""
    batches = plan_batches(lengths, max_tokens)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    for batch in batches:
        assert batch
        assert len(batch) == 1 or padded_cost(batch, lengths) <= max_tokens
    # Greedy packing: the next batch's first text would have pushed this one over the budget.
    for batch, following in itertools.pairwise(batches):
        assert padded_cost([*batch, following[0]], lengths) > max_tokens
