"""A batch's candidates as (shopper, row) pairs (:mod:`stream.ranking.pairs`), against the same
arithmetic done one shopper at a time with plain numpy and Python sets."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.ranking.blend import _shares
from stream.ranking.pairs import Pairs, lookup, owned

SHOPPERS = 6
ROWS = 40


def _random_pairs(seed: int) -> tuple[Pairs, list[set[int]]]:
    """Pairs from three overlapping sources with absent rows (-1), exclusions and rows not
    eligible; and each shopper's candidate set computed with sets."""
    rng = np.random.default_rng(seed)
    proposed = []
    for _ in range(3):
        owners = rng.integers(0, SHOPPERS, 60)
        proposed.append((owners, rng.integers(-1, ROWS, 60)))
    ex = (rng.integers(0, SHOPPERS, 15), rng.integers(-1, ROWS, 15))
    eligible = rng.random(ROWS) > 0.2
    pairs = Pairs.of(SHOPPERS, proposed, ex, eligible)
    want: list[set[int]] = [set() for _ in range(SHOPPERS)]
    for owners, rows in proposed:
        for o, r in zip(owners.tolist(), rows.tolist(), strict=True):
            if r >= 0:
                want[o].add(r)
    for o, r in zip(*(a.tolist() for a in ex), strict=True):
        want[o].discard(r)
    return pairs, [{r for r in w if eligible[r]} for w in want]


@given(st.integers(0, 10_000))
@settings(max_examples=50, deadline=None)
def test_pairs_are_each_shoppers_candidates_in_row_order(seed: int) -> None:
    pairs, want = _random_pairs(seed)
    for n in range(SHOPPERS):
        segment = slice(pairs.starts[n], pairs.starts[n + 1])
        assert (pairs.owner[segment] == n).all()
        assert pairs.row[segment].tolist() == sorted(want[n])
    assert pairs.starts[-1] == len(pairs) == sum(len(w) for w in want)


@given(st.integers(0, 10_000))
@settings(max_examples=50, deadline=None)
def test_segment_arithmetic_equals_one_shopper_at_a_time(seed: int) -> None:
    """Shares, relative popularity (NaN: none), largest and n-th largest of each shopper's
    segment: bit for bit what the one-shopper computation gives."""
    pairs, _ = _random_pairs(seed)
    rng = np.random.default_rng(seed + 1)
    values = rng.normal(size=len(pairs)) * rng.choice([0.0, 1.0, 1e-300, 1e300], len(pairs))
    logs = np.where(rng.random(len(pairs)) < 0.3, np.nan, rng.normal(size=len(pairs)) * 50)
    shares, relative = pairs.shares(values), pairs.relative(logs)
    for n in range(SHOPPERS):
        segment = slice(pairs.starts[n], pairs.starts[n + 1])
        np.testing.assert_array_equal(shares[segment], _shares(values[segment]))
        own = logs[segment]
        known = np.isfinite(own)
        expected = np.zeros(len(own))
        if known.any():
            expected[known] = np.exp(own[known] - own[known].max())
        np.testing.assert_array_equal(relative[segment], expected)
        for k in (1, 3):
            nth = pairs.nth_largest(values, k)[n]
            if len(own) >= k:
                assert nth == np.sort(values[segment])[::-1][k - 1]
            else:
                assert np.isnan(nth)
        top = pairs.largest(values, -np.inf)[n]
        assert top == (values[segment].max() if len(own) else -np.inf)


def test_lookup_reads_positive_finite_entries_of_each_pairs_row() -> None:
    """``matrix[owner, col]`` where positive and finite, else 0 (a column of -1 is none, even
    where the previous row's last entry is positive), with the matrix's entries unsorted within
    rows and an explicit zero stored."""
    dense = np.array(
        [[0.0, 2.0, -1.0, np.inf], [0.5, 0.0, 3.0, 4.0], [0.0, 0.0, 0.0, 7.0]], dtype=np.float64
    )
    m = sp.csr_matrix(
        (
            [2.0, -1.0, np.inf, 3.0, 0.5, 0.0, 4.0, 7.0],
            [1, 2, 3, 2, 0, 1, 3, 3],
            [0, 3, 7, 8],
        ),
        shape=dense.shape,
    )
    owner = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2], dtype=np.intp)
    cols = np.array([0, 1, 2, 3, 0, 1, 2, 3, -1, 0], dtype=np.intp)
    stored = m.indices.copy()
    got = lookup(m, owner, cols)
    assert m.indices.tolist() == stored.tolist()  # the caller's matrix is left as it was
    expected = [
        dense[o, c] if c >= 0 and np.isfinite(dense[o, c]) and dense[o, c] > 0 else 0.0
        for o, c in zip(owner.tolist(), cols.tolist(), strict=True)
    ]
    assert got.tolist() == expected
    assert lookup(sp.csr_matrix((2, 3)), owner[:2], cols[:2]).tolist() == [0.0, 0.0]


def test_owned_flattens_groups_with_their_shopper() -> None:
    owners, flat = owned([["a", "b"], [], ["c"]])
    assert owners.tolist() == [0, 0, 2] and flat == ["a", "b", "c"]


def test_no_pairs_at_all_and_a_row_past_the_table() -> None:
    none = np.zeros(0, np.intp)
    pairs = Pairs.of(3, [], (none, none), np.ones(5, bool))
    assert len(pairs) == 0 and pairs.starts.tolist() == [0, 0, 0, 0]
    assert pairs.shares(np.zeros(0)).tolist() == []
    assert np.isnan(pairs.nth_largest(np.zeros(0), 1)).all()
    with pytest.raises(ValueError, match="past the table"):
        Pairs.of(
            1, [(np.array([0], np.intp), np.array([9], np.intp))], (none, none), np.ones(3, bool)
        )
