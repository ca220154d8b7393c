"""MemoryIndex: the in-memory copy of the items collection (rows, recorded lists, floors,
swap-remove, which lists name an item)."""

from __future__ import annotations

import numpy as np
import pytest

from stream.catalog.index import MemoryIndex
from stream.catalog.lists import NO_FLOOR, NeighbourState

K = 3


def vec(*values: float) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def state(*pairs: tuple[str, float]) -> NeighbourState:
    return NeighbourState(tuple(k for k, _ in pairs), tuple(s for _, s in pairs))


def test_put_stores_unit_vectors_and_new_keys_have_no_list_and_no_floor() -> None:
    index = MemoryIndex(2, K)
    index.put({"a": vec(3, 4), "b": vec(0, 2)}, {"a": 4, "b": None})
    assert len(index) == 2
    assert index.vectors(["a"])["a"] == pytest.approx([0.6, 0.8])
    assert list(index.floors) == [NO_FLOOR, NO_FLOOR]
    assert index.recorded(["a"])["a"] is None
    assert index.versions == {"a": 4, "b": None}


def test_recorded_lists_read_back_with_their_floor() -> None:
    """A full list's floor is its k-th score; a shorter one (an empty one too) has none."""
    index = MemoryIndex(2, K)
    index.put({"a": vec(1, 0), "b": vec(0, 1), "c": vec(1, 1)})
    full = state(("b", 0.9), ("c", 0.5), ("x", 0.25))
    index.set_lists({"a": full, "b": state(("a", 0.1)), "c": state(), "unknown": full})
    assert index.recorded(["a"])["a"] == full
    assert index.recorded(["b"])["b"] == state(("a", 0.1))
    assert index.recorded(["c"])["c"] == state()
    assert list(index.floors) == [0.25, NO_FLOOR, NO_FLOOR]


def test_a_list_longer_than_k_is_cut_to_k() -> None:
    index = MemoryIndex(2, K)
    index.put({"a": vec(1, 0)})
    index.set_lists({"a": state(("b", 0.9), ("c", 0.8), ("d", 0.7), ("e", 0.6))})
    assert index.recorded(["a"])["a"] == state(("b", 0.9), ("c", 0.8), ("d", 0.7))
    assert index.floors[0] == 0.7


def test_replacing_a_vector_keeps_its_list() -> None:
    """As in the store, where an upsert keeps the recorded list: a changed item keeps it."""
    index = MemoryIndex(2, K)
    index.put({"a": vec(1, 0)}, {"a": 1})
    index.set_lists({"a": state(("b", 0.6), ("c", 0.5), ("d", 0.4))})
    index.put({"a": vec(0, 1)}, {"a": 2})
    assert index.floors[index.rows["a"]] == pytest.approx(0.4)
    assert index.recorded(["a"])["a"] == state(("b", 0.6), ("c", 0.5), ("d", 0.4))
    assert index.vectors(["a"])["a"] == pytest.approx([0, 1])
    assert index.versions["a"] == 2


def test_remove_moves_the_last_row_into_the_gap() -> None:
    index = MemoryIndex(2, K)
    index.put({"a": vec(1, 0), "b": vec(0, 1), "c": vec(1, 1)}, {"a": 1, "c": 3})
    index.set_lists({"c": state(("b", 0.7), ("a", 0.6), ("z", 0.3))})
    index.remove(["a", "missing"])
    assert sorted(index.keys) == ["b", "c"]
    assert index.keys[index.rows["c"]] == "c"
    assert index.floors[index.rows["c"]] == pytest.approx(0.3)
    assert index.recorded(["c"])["c"] == state(("b", 0.7), ("a", 0.6), ("z", 0.3))
    assert index.vectors(["c"])["c"] == pytest.approx([2**-0.5, 2**-0.5])
    assert "a" not in index.vectors(["a"]) and "a" not in index.versions


def test_a_key_that_comes_back_has_no_list_yet() -> None:
    index = MemoryIndex(2, K)
    index.put({"a": vec(1, 0)})
    index.set_lists({"a": state(("b", 0.6))})
    index.remove(["a"])
    index.put({"a": vec(1, 0)})
    assert index.recorded(["a"])["a"] is None


def test_listing_finds_the_lists_that_name_a_key() -> None:
    """Against a plain scan of the recorded lists, after replacements and removals; a list
    keeps naming a removed item until it is recorded again."""
    rng = np.random.default_rng(3)
    keys = [f"k{i}" for i in range(300)]
    index = MemoryIndex(2, K)
    index.put({k: vec(1, 0) for k in keys})
    lists = {}
    for round_ in range(3):
        for k in rng.choice(index.keys, 120, replace=False).tolist():
            named = rng.choice([*keys, "gone-1", "gone-2"], K, replace=False).tolist()
            lists[k] = state(*((n, 1.0 - j / 10) for j, n in enumerate(named)))
        index.set_lists(lists)
        removed = keys[round_ * 7 : round_ * 7 + 5]
        index.remove(removed)
        for k in removed:
            lists.pop(k, None)
        for probe in [["k5"], ["gone-1"], ["k17", "k250", "never-named"], [], keys[100:140]]:
            want = {k for k, s in lists.items() if set(s.ids) & set(probe)}
            assert index.listing(probe) == want, (round_, probe)


def test_grows_past_its_first_capacity_and_searches_every_row() -> None:
    """3,000 rows (the first allocation holds 1,024), no clusters: each query's top k is the
    one a plain matrix product gives."""
    rng = np.random.default_rng(1)
    m = rng.normal(size=(3_000, 8)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    index = MemoryIndex(8, K)
    index.put({f"k{i}": m[i] for i in range(3_000)})
    queries = m[:50]
    found = index.search(queries, np.full(50, -1, dtype=np.intp), None)
    want = np.sort(queries @ m.T, axis=1)[:, ::-1][:, :K]
    assert np.allclose(np.vstack(found.top_scores), want, atol=1e-6)
    assert found.scored_rows == 50 * 3_000


def test_a_new_row_does_not_inherit_a_removed_items_list() -> None:
    """The last row's arrays are left behind by a removal; the next new key in that row has
    no list, and no list of it names anything."""
    index = MemoryIndex(2, K)
    index.put({"a": vec(1, 0), "x": vec(0, 1)})
    index.set_lists({"x": state(("a", 0.5))})
    index.remove(["x"])
    index.put({"y": vec(1, 1)})
    assert index.recorded(["y"])["y"] is None
    assert index.listing(["a"]) == set()


def test_searches_skip_clusters_that_just_failed_to_prune_and_try_them_again() -> None:
    """Spread queries (random directions: near no cluster) make the clusters fail: the
    next SKIP_CLUSTERS searches of that kind go straight to the full product, then the clusters
    are tried again; searches with entries keep trying theirs. Answers are the full scan's. Only
    an index made to skip does (the shoppers' copy)."""
    from stream.catalog.index import SKIP_CLUSTERS

    rng = np.random.default_rng(2)
    centres = rng.normal(size=(40, 64))
    m = (centres[np.arange(3_000) % 40] + 0.1 * rng.normal(size=(3_000, 64))).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    index = MemoryIndex(64, K, min_rows=1_000, background=False, skip_failed_clusters=True)
    index.put({f"k{i}": m[i] for i in range(3_000)})
    index.settle()
    spread = rng.normal(size=(64, 64)).astype(np.float32)
    spread /= np.linalg.norm(spread, axis=1, keepdims=True)
    none = np.full(64, -1, dtype=np.intp)
    want = np.sort(spread @ m.T, axis=1)[:, ::-1][:, :K]
    kinds = []
    for _ in range(SKIP_CLUSTERS + 2):
        found = index.search(spread, none, None)
        kinds.append(found.clustered)
        assert np.allclose(np.vstack(found.top_scores), want, atol=1e-6)
    assert kinds == [False] + [None] * SKIP_CLUSTERS + [False]
    own = np.asarray([index.rows[f"k{i}"] for i in range(5)], dtype=np.intp)
    # rows' own vectors: their clusters answer
    with_entries = index.search(m[:5], own, own)
    assert with_entries.clustered is True
    # the catalog's index (no skipping): a failed attempt leaves the next search clustered
    catalog = MemoryIndex(64, K, min_rows=1_000, background=False)
    catalog.put({f"k{i}": m[i] for i in range(3_000)})
    catalog.settle()
    assert [catalog.search(spread, none, None).clustered for _ in range(2)] == [False, False]


@pytest.mark.parametrize("screen", [False, True])
def test_rows_put_in_cluster_order_keep_each_keys_vector_list_version_and_flag(
    screen: bool,
) -> None:
    """When clusters are put to use, the rows are in cluster order (a cluster's rows one run
    of the matrix); every key keeps its vector, recorded list, floor, version and hidden flag,
    and a search (spread queries: the full product, through the bfloat16 copy with ``screen``)
    still names the right keys."""
    rng = np.random.default_rng(3)
    m = rng.normal(size=(1_200, 16)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    keys = [f"k{i}" for i in range(1_200)]
    index = MemoryIndex(16, K, min_rows=1_000, background=False, screen=screen)
    index.put(dict(zip(keys, m, strict=True)), versions={k: i for i, k in enumerate(keys)})
    lists = {
        k: state(*((keys[(i + n) % 1_200], 1 - n / 10 - i / 10_000) for n in range(1, K + 1)))
        for i, k in enumerate(keys)
        if i % 11  # every 11th with no list recorded
    }
    index.set_lists(lists)
    index.hide({k: True for k in keys[::7]})
    index.settle()
    clusters = index._cluster[: len(index)]
    assert index._partition is not None and (np.diff(clusters) >= 0).all()
    assert index.keys != keys  # the rows did move
    rows = [index.rows[k] for k in keys]
    assert [index.keys[r] for r in rows] == keys
    assert np.allclose(index.matrix[rows], m, atol=1e-6)
    assert index.recorded(keys) == {k: lists.get(k) for k in keys}
    floors = [lists[k].scores[-1] if k in lists else NO_FLOOR for k in keys]
    assert np.array_equal(index.floors[rows], floors)
    assert index.versions == {k: i for i, k in enumerate(keys)}
    hidden = index.hidden
    assert hidden is not None and hidden[rows].tolist() == [i % 7 == 0 for i in range(1_200)]
    found = index.search(m[:20], np.asarray(rows[:20], dtype=np.intp), None)
    scores = m[:20] @ m.T
    scores[np.arange(20), np.arange(20)] = -np.inf
    scores[:, ::7] = -np.inf  # hidden
    for q in range(20):
        want = [keys[c] for c in np.argsort(-scores[q])[:K]]
        assert [index.keys[r] for r in found.top_rows[q].tolist()] == want


@pytest.mark.parametrize("entries", [False, True])
def test_a_search_that_puts_rows_in_cluster_order_reads_the_rows_its_caller_named(
    entries: bool,
) -> None:
    """The search that puts new clusters to use (and the rows in cluster order) is given rows
    named before: each query's own row is still left out of its list, the queries' own lists
    (``no_entry``) are the ones not entered (every list's floor is below any score), and the
    answers are brute force's, by key."""
    rng = np.random.default_rng(8)
    m = rng.normal(size=(1_200, 16)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    keys = [f"k{i}" for i in range(1_200)]
    index = MemoryIndex(16, K, min_rows=1_000, background=False)
    index.put(dict(zip(keys, m, strict=True)))
    # every other list's floor below any score: every query enters it, but for its own
    lists = {
        key: state(*((keys[(i + n) % 1_200], -1.5 - n / 10) for n in range(1, K + 1)))
        for i, key in enumerate(keys)
    }
    index.set_lists(lists)
    asked = [3, 10, 500, 1_100]
    own = np.asarray([index.rows[keys[i]] for i in asked], dtype=np.intp)
    before = list(index.keys)
    found = index.search(m[asked], own, own if entries else None)
    assert index.keys != before  # this search sorted the rows
    scores = m[asked] @ m.T
    scores[np.arange(len(asked)), asked] = -np.inf
    for q in range(len(asked)):
        want = [keys[c] for c in np.argsort(-scores[q])[:K]]
        assert [index.keys[r] for r in found.top_rows[q].tolist()] == want
    if entries:
        got = sorted((q, index.keys[r]) for q, r, _ in found.entries)
        named = {keys[i] for i in asked}  # no_entry: the queries' own lists are not entered
        want_entries = sorted((q, k) for q in range(len(asked)) for k in keys if k not in named)
        assert got == want_entries


def test_an_index_asked_not_to_sort_keeps_its_rows_where_they_are() -> None:
    """``cluster_order=False`` (RECSTREAM_NEIGHBOUR_CLUSTER_ORDER=false): the clusters are put
    to use, no copy is made, the rows stay in the order they were written; answers exact."""
    rng = np.random.default_rng(10)
    m = rng.normal(size=(1_200, 16)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    keys = [f"k{i}" for i in range(1_200)]
    index = MemoryIndex(16, K, min_rows=1_000, background=False, cluster_order=False)
    index.put(dict(zip(keys, m, strict=True)))
    index.settle()
    assert index._partition is not None and index.keys == keys
    found = index.search(m[:5], np.arange(5, dtype=np.intp), None)
    scores = m[:5] @ m.T
    scores[np.arange(5), np.arange(5)] = -np.inf
    for q in range(5):
        assert found.top_rows[q].tolist() == np.argsort(-scores[q])[:K].tolist()
