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


def test_max_padding_splits_texts_of_very_different_lengths() -> None:
    """With max_padding, a text shorter than (1 - max_padding) x the batch's longest starts a
    new batch, even with budget to spare."""
    lengths = [100, 95, 91, 89, 50, 46]
    assert plan_batches(lengths, 10_000) == [[0, 1, 2, 3, 4, 5]]
    assert plan_batches(lengths, 10_000, max_padding=0.1) == [[0, 1, 2], [3], [4, 5]]
    assert plan_batches(lengths, 10_000, max_padding=0.0) == [[0], [1], [2], [3], [4], [5]]
    with pytest.raises(ValueError, match="max_padding"):
        plan_batches(lengths, 100, max_padding=1.5)


def test_rejects_non_positive_budget() -> None:
    """A budget below one token is a programming error, reported as ValueError."""
    with pytest.raises(ValueError, match="max_tokens"):
        plan_batches([1], 0)


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=512), max_size=200),
    max_tokens=st.integers(min_value=1, max_value=10_000),
    max_padding=st.sampled_from([1.0, 0.5, 0.1, 0.0]),
)
def test_plan_properties(lengths: list[int], max_tokens: int, max_padding: float) -> None:
    """Every index once; sorted by length; each batch within budget or alone, and within the
    padding bound; batches are full: the next batch's first text would break a bound."""
    batches = plan_batches(lengths, max_tokens, max_padding)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    for batch in batches:
        assert batch
        assert len(batch) == 1 or padded_cost(batch, lengths) <= max_tokens
        assert min(lengths[i] for i in batch) >= (1 - max_padding) * lengths[batch[0]]
    for batch, following in itertools.pairwise(batches):
        over_budget = padded_cost([*batch, following[0]], lengths) > max_tokens
        too_short = lengths[following[0]] < (1 - max_padding) * lengths[batch[0]]
        assert over_budget or too_short
