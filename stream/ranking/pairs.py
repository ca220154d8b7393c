"""A batch's candidates as (shopper, item row) pairs, and the per-shopper arithmetic on them.

Pure numpy, no I/O. The recommender names each shopper's candidates as rows of one table of the
batch's items (:class:`stream.ranking.candidates.ItemTable`); here they become one pair each,
ordered by shopper and then by row, so each shopper's candidates are one contiguous segment.
What :mod:`stream.ranking.blend` computes for one shopper's candidates at a time (each value's
share of the shopper's largest, a popularity relative to the largest known) is computed here for
every segment at once, with the same operations on the same values: a shopper's numbers do not
depend on who else is in the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

Ints = npt.NDArray[np.intp]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Pairs:
    """Every shopper's candidates: ``owner`` (the shopper's number) and ``row`` (the table's)
    of each pair, by shopper and then row, no pair twice; shopper ``n``'s pairs are
    ``starts[n]:starts[n + 1]``."""

    owner: Ints
    row: Ints
    starts: Ints

    @classmethod
    def of(
        cls,
        shoppers: int,
        proposed: Sequence[tuple[Ints, Ints]],
        excluded: tuple[Ints, Ints],
        eligible: npt.NDArray[np.bool_],
    ) -> Pairs:
        """The pairs ``proposed`` (owners and rows; a row below 0 is no item), less the
        ``excluded`` ones and the rows not ``eligible``."""
        width = max(len(eligible), 1)
        owners = np.concatenate([np.asarray(o, np.intp) for o, _ in proposed] or [_none()])
        rows = np.concatenate([np.asarray(r, np.intp) for _, r in proposed] or [_none()])
        keep = rows >= 0
        if keep.any() and rows[keep].max() >= len(eligible):
            raise ValueError(f"a row past the table's {len(eligible)}: {rows[keep].max()}")
        keys = np.unique(owners[keep] * width + rows[keep])
        ex_owner, ex_row = (np.asarray(a, np.intp) for a in excluded)
        named = (ex_row >= 0) & (ex_row < width)
        ex = ex_owner[named] * width + ex_row[named]
        if len(ex):
            keys = keys[~np.isin(keys, ex)]
        owner, row = np.divmod(keys, width)
        kept = eligible[row]
        owner, row = owner[kept], row[kept]
        starts = np.searchsorted(owner, np.arange(shoppers + 1), side="left")
        return cls(owner, row, starts)

    def __len__(self) -> int:
        return len(self.row)

    def largest(self, values: Floats, floor: float) -> Floats:
        """Each shopper's largest of ``values`` (one per pair), ``floor`` for a shopper with
        none above it."""
        out = np.full(len(self.starts) - 1, floor, dtype=np.float64)
        np.maximum.at(out, self.owner, values)
        return out

    def shares(self, values: Floats) -> Floats:
        """Each value over its shopper's largest (negatives count 0), 0 where that is not
        positive: :func:`stream.ranking.blend._shares` of every segment."""
        positive = np.maximum(values, 0.0)
        largest = self.largest(positive, 0.0)[self.owner]
        out = np.zeros(len(values), dtype=np.float64)
        some = largest > 0
        out[some] = np.minimum(1.0, positive[some] / largest[some])
        return out

    def relative(self, log_values: Floats) -> Floats:
        """exp(log value - its shopper's largest): each value's share of the largest; NaN
        (none) is 0, for every segment at once."""
        known = np.isfinite(log_values)
        largest = self.largest(np.where(known, log_values, -np.inf), -np.inf)[self.owner]
        out = np.zeros(len(log_values), dtype=np.float64)
        out[known] = np.exp(log_values[known] - largest[known])
        return out

    def nth_largest(self, values: Floats, n: int) -> Floats:
        """Each shopper's ``n``-th largest value (NaN for a shopper with fewer pairs; a NaN
        value counts as the smallest)."""
        order = np.lexsort((-values, self.owner))
        out = np.full(len(self.starts) - 1, np.nan, dtype=np.float64)
        counts = np.diff(self.starts)
        some = np.flatnonzero(counts >= n)
        out[some] = values[order[self.starts[some] + n - 1]]
        return out


def lookup(matrix: sp.csr_matrix, owner: Ints, cols: Ints) -> Floats:
    """``matrix[owner, col]`` for each pair where positive and finite, else 0 (and 0 where
    ``col`` is below 0): one sorted search over the matrix's entries for all pairs."""
    m = matrix if matrix.has_sorted_indices else matrix.sorted_indices()  # never in place
    out = np.zeros(len(owner), dtype=np.float64)
    if not m.nnz or not len(owner):
        return out
    entry_rows = np.repeat(np.arange(m.shape[0], dtype=np.intp), np.diff(m.indptr))
    usable = (m.data > 0) & np.isfinite(m.data)
    width = max(int(m.shape[1]), 1)
    keys = entry_rows[usable] * width + m.indices[usable].astype(np.intp)
    values = np.asarray(m.data[usable], dtype=np.float64)
    if not len(keys):
        return out
    wanted = owner * width + cols
    pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    hit = (cols >= 0) & (keys[pos] == wanted)
    out[hit] = values[pos[hit]]
    return out


def owners(counts: Sequence[int]) -> Ints:
    """The shopper number of each of ``counts[n]`` elements of shopper ``n``, in turn."""
    return np.repeat(np.arange(len(counts), dtype=np.intp), np.asarray(counts, dtype=np.intp))


def owned(groups: Sequence[Sequence[Any]]) -> tuple[Ints, list[Any]]:
    """Groups (one per shopper) flattened: each element's shopper number, and the elements."""
    return owners([len(g) for g in groups]), [x for g in groups for x in g]


def _none() -> Ints:
    return np.zeros(0, dtype=np.intp)
