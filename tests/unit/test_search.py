"""Exact search over the in-memory index, with and without clusters: each query's top k and the
lists it enters equal what a brute-force product over the whole catalogue gives, however the
catalogue changed since its clusters were made."""

from __future__ import annotations

import numpy as np
import pytest

from stream.catalog.index import MemoryIndex
from stream.catalog.lists import NeighbourState
from stream.catalog.partition import Partition

K = 5
DIM = 16


def clustered(rng: np.random.Generator, n: int, groups: int = 12) -> np.ndarray:
    """Unit vectors around ``groups`` directions (as product texts of a few kinds are)."""
    centres = rng.normal(size=(groups, DIM))
    out = centres[rng.integers(0, groups, n)] + rng.normal(scale=0.15, size=(n, DIM))
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def record_true_lists(index: MemoryIndex, skip: float = 0.0) -> None:
    """Record each item's true top k (a fraction ``skip`` left with no list: no floor)."""
    m = index.matrix
    scores = m @ m.T
    np.fill_diagonal(scores, -np.inf)
    rng = np.random.default_rng(7)
    lists = {}
    for row, key in enumerate(index.keys):
        if rng.random() < skip:
            continue
        best = np.argsort(-scores[row])[:K]
        lists[key] = NeighbourState(
            tuple(index.keys[c] for c in best), tuple(float(scores[row, c]) for c in best)
        )
    index.set_lists(lists)


def brute(
    index: MemoryIndex, queries: np.ndarray, own: np.ndarray, no_entry: np.ndarray
) -> tuple[list[list[float]], set[tuple[int, int]]]:
    """Top-k scores and (query, row) entries from a product with every row."""
    scores = (queries @ index.matrix.T).astype(np.float64)
    for q, row in enumerate(own):
        if row >= 0:
            scores[q, row] = -np.inf
    tops = [sorted(row[np.isfinite(row)], reverse=True)[:K] for row in scores]
    enters = scores > index.floors[np.newaxis, :]
    enters[:, no_entry] = False
    return tops, {(int(q), int(r)) for q, r in zip(*np.nonzero(enters), strict=True)}


def check(index: MemoryIndex, queries: np.ndarray, own: np.ndarray) -> int:
    no_entry = own[own >= 0]
    found = index.search(queries, own, no_entry)
    want_tops, want_entries = brute(index, queries, own, no_entry)
    for q, want in enumerate(want_tops):
        assert found.top_scores[q] == pytest.approx(want, abs=1e-6), q
        assert own[q] not in found.top_rows[q].tolist()
    assert {(q, r) for q, r, _ in found.entries} == want_entries
    for q, r, score in found.entries:
        assert score == pytest.approx(float(queries[q] @ index.matrix[r]), abs=1e-6)
    return found.scored_rows


def test_clusters_bound_every_member_also_after_items_move() -> None:
    """The invariant the search rests on: no member of a cluster scores above the cluster's
    bound with any query, including items assigned after the clusters were made."""
    rng = np.random.default_rng(0)
    m = clustered(rng, 2_000)
    partition, of_row = Partition.build(m[:1_500])
    of_row = np.concatenate([of_row, partition.assign(m[1_500:])])
    queries = clustered(rng, 40)
    bounds = partition.bounds(queries)
    scores = queries @ m.T
    assert (scores <= bounds[:, of_row]).all()
    assert (bounds < 1).any()  # some cluster can be skipped for some query


@pytest.mark.parametrize("skip", [0.0, 0.2])
def test_search_with_clusters_equals_a_full_product(skip: float) -> None:
    """New items (their own rows excluded, their lists not yet recorded) and existing ones
    as queries: the same top k and entries as brute force; with every list recorded, reading
    less than half the catalogue."""
    rng = np.random.default_rng(1)
    m = clustered(rng, 3_000)
    index = MemoryIndex(DIM, K, min_rows=500)
    index.put({f"k{i}": m[i] for i in range(2_940)})
    record_true_lists(index, skip)
    new = {f"n{i}": m[2_940 + i] for i in range(60)}
    index.put(new)
    own = np.asarray([index.rows[k] for k in new], dtype=np.intp)
    scored = check(index, index.matrix[own], own)
    if not skip:  # an item with no list (no floor) can be entered from anywhere
        assert scored < 60 * len(index) / 2  # the clusters were used, and pruned
    existing = np.arange(0, 2_940, 97, dtype=np.intp)
    check(index, index.matrix[existing], existing)
    outside = clustered(rng, 8)  # queries that are not rows at all
    check(index, outside, np.full(8, -1, dtype=np.intp))


def test_search_stays_exact_after_removes_updates_and_a_rebuild() -> None:
    """Swap-removes, vectors replaced (items moving between clusters) and growth past twice the
    size the clusters were made at (a rebuild) keep every answer exact."""
    rng = np.random.default_rng(2)
    m = clustered(rng, 5_000, groups=20)
    index = MemoryIndex(DIM, K, min_rows=400)
    index.put({f"k{i}": m[i] for i in range(1_000)})
    record_true_lists(index)
    probe = clustered(rng, 10)
    none = np.full(10, -1, dtype=np.intp)
    check(index, probe, none)  # builds the clusters at 1,000 rows
    index.remove([f"k{i}" for i in range(0, 1_000, 3)])
    moved = {f"k{i}": m[4_000 + i] for i in range(1, 1_000, 10)}
    index.put(moved)
    check(index, probe, none)
    own = np.asarray([index.rows[k] for k in moved], dtype=np.intp)
    check(index, index.matrix[own], own)
    index.put({f"g{i}": m[1_000 + i] for i in range(2_500)})  # past 2x: rebuilt
    record_true_lists(index, 0.1)
    check(index, probe, none)
    assert index._partition is not None and index._partition.built_rows == len(index)


def test_a_catalogue_smaller_than_k_gives_short_lists() -> None:
    rng = np.random.default_rng(3)
    m = clustered(rng, 3)
    index = MemoryIndex(DIM, K, min_rows=2)
    index.put({f"k{i}": m[i] for i in range(3)})
    found = index.search(m, np.arange(3, dtype=np.intp), None)
    assert [len(rows) for rows in found.top_rows] == [2, 2, 2]
