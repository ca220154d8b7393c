"""Exact search over the in-memory index, with and without clusters: each query's top k and the
lists it enters equal what a brute-force product over the whole catalogue gives, however the
catalogue changed since its clusters were made."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from stream.catalog import search as search_module
from stream.catalog.index import MemoryIndex
from stream.catalog.lists import NeighbourState
from stream.catalog.partition import Partition, Sorted, _sums

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
) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """Top-k rows and (query, row) entries from a product with every row; a row with no
    recorded list is never reported as entered (every query enters it)."""
    scores = (queries @ index.matrix.T).astype(np.float64)
    for q, row in enumerate(own):
        if row >= 0:
            scores[q, row] = -np.inf
    tops = [
        [int(r) for r in np.argsort(-row, kind="stable")[:K] if row[r] > -np.inf] for row in scores
    ]
    enters = scores > index.floors[np.newaxis, :]
    enters[:, no_entry] = False
    enters[:, [index.rows[k] for k in index.unrecorded(len(index))]] = False
    return tops, sorted((int(q), int(r)) for q, r in zip(*np.nonzero(enters), strict=True))


def check(index: MemoryIndex, queries: np.ndarray, own: np.ndarray, entries: bool = True) -> int:
    """The search's answers are brute force's (continuous random data: no ties), with each
    score the query's product with that row."""
    no_entry = own[own >= 0]
    found = index.search(queries, own, no_entry if entries else None)
    want_tops, want_entries = brute(index, queries, own, no_entry)
    m = index.matrix
    for q, want in enumerate(want_tops):
        assert found.top_rows[q].tolist() == want, q
        assert found.top_scores[q] == pytest.approx(m[want] @ queries[q], abs=1e-6)
    if entries:
        got = [(q, r) for q, r, _ in found.entries]
        assert len(got) == len(set(got))  # each once
        # a row whose list holds the query scores its floor: float rounding decides
        tie = np.abs(queries @ m.T - index.floors[np.newaxis, :]) < 1e-6
        assert {e for e in got if not tie[e]} == {e for e in want_entries if not tie[e]}
    for q, r, score in found.entries:
        assert score == pytest.approx(float(queries[q] @ m[r]), abs=1e-6)
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
    as queries: the same top k and entries as brute force, reading less than half the
    catalogue, also with a fifth of the lists not recorded (those are not searched for)."""
    rng = np.random.default_rng(1)
    m = clustered(rng, 3_000)
    index = MemoryIndex(DIM, K, min_rows=500)
    index.put({f"k{i}": m[i] for i in range(2_940)})
    record_true_lists(index, skip)
    new = {f"n{i}": m[2_940 + i] for i in range(60)}
    index.put(new)
    index.settle()  # the clusters are made on a worker thread
    own = np.asarray([index.rows[k] for k in new], dtype=np.intp)
    scored = check(index, index.matrix[own], own)
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
    check(index, probe, none)  # a full scan; the clusters are being made at 1,000 rows
    index.settle()
    index.remove([f"k{i}" for i in range(0, 1_000, 3)])
    moved = {f"k{i}": m[4_000 + i] for i in range(1, 1_000, 10)}
    # and some to directions no cluster was made around: their clusters' radii must grow
    far = rng.normal(size=(3, DIM)).astype(np.float32)
    moved.update({f"k{i}": far[n] for n, i in enumerate((2, 502, 992))})
    index.put(moved)
    check(index, probe, none)
    own = np.asarray([index.rows[k] for k in moved], dtype=np.intp)
    check(index, index.matrix[own], own)
    beside_far = far + rng.normal(scale=0.05, size=far.shape).astype(np.float32)
    beside_far /= np.linalg.norm(beside_far, axis=1, keepdims=True)
    scored = check(index, beside_far, np.full(3, -1, dtype=np.intp), entries=False)
    assert scored < 3 * len(index) / 4  # pruned, not the full scan
    index.put({f"g{i}": m[1_000 + i] for i in range(2_500)})  # far past 1.5x: rebuilt
    record_true_lists(index, 0.1)
    check(index, probe, none)
    index.settle()
    assert index._partition is not None and index._partition.built_rows == len(index)
    index.remove([f"g{i}" for i in range(2_500)] + [f"k{i}" for i in range(1, 1_000, 3)])
    assert len(index) < 400  # below min_rows: no clusters
    check(index, probe, none)
    assert index._partition is None
    index.put({f"h{i}": m[3_500 + i] for i in range(500)})  # and above again
    record_true_lists(index)
    check(index, probe, none)
    index.settle()
    check(index, probe, none)
    assert index._partition is not None


def test_near_duplicates_of_a_centre_do_not_shrink_its_radius() -> None:
    """Members within ~1e-4 radians of their centre (float32 lengths off by ~1e-7): a radius
    taken from arccos(member . centre) came out 3x too small, and a search missed x."""
    rows = {
        "a1": [1, 0, 0],
        "a2": [1, 0, 0],
        "a3": [1, 0, 0],
        "x": [1, 3e-4, 0],
        "b1": [0, 2.7e-4, 1],
        "b2": [0, -0.5, 0.866],
    }
    index = MemoryIndex(3, 1, min_rows=2)
    index.put({k: np.asarray(v, dtype=np.float32) for k, v in rows.items()})
    found = index.search(np.asarray([[0, 1, 0]], dtype=np.float32), np.asarray([-1]), None)
    assert [index.keys[r] for r in found.top_rows[0]] == ["x"]


def test_a_catalogue_smaller_than_k_gives_short_lists() -> None:
    rng = np.random.default_rng(3)
    m = clustered(rng, 3)
    index = MemoryIndex(DIM, K, min_rows=2)
    index.put({f"k{i}": m[i] for i in range(3)})
    found = index.search(m, np.arange(3, dtype=np.intp), None)
    assert [len(rows) for rows in found.top_rows] == [2, 2, 2]


def test_an_item_added_far_from_its_centre_widens_its_cluster() -> None:
    """Clusters made around x, y and z; an item then added between x and y (42 degrees from
    x) joins x's cluster. A query nearer y finds it best: x's cluster must still be scored,
    so its radius has to grow to 42 degrees."""
    rng = np.random.default_rng(4)
    axes = np.eye(3, dtype=np.float32)
    groups = np.repeat(axes, 20, axis=0) + rng.normal(scale=0.01, size=(60, 3)).astype(np.float32)
    index = MemoryIndex(3, 1, min_rows=10)
    index.put({f"g{i}": v for i, v in enumerate(groups)})
    query = np.asarray([[0.5, 1.0, 0.0]], dtype=np.float32) / np.sqrt(1.25, dtype=np.float32)
    index.settle()  # the clusters are made
    index.put({"between": np.asarray([1.0, 0.9, 0.0], dtype=np.float32)})
    found = index.search(query, np.asarray([-1]), None)
    assert [index.keys[r] for r in found.top_rows[0]] == ["between"]
    assert found.scored_rows < len(index)  # y's and x's clusters, not z's


def test_writes_while_clusters_are_made_are_assigned_when_they_are_put_to_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Clusters are made on a worker thread from the index's matrix as it is written (held
    here until the writes are done). Rows removed (swap-removes move others), moved far and
    added (past the matrix's capacity: it is reallocated meanwhile) before the new clusters are
    put to use are assigned again then: no row scores above its cluster's bound, and every
    answer is exact."""
    rng = np.random.default_rng(5)
    m = clustered(rng, 3_000)
    index = MemoryIndex(DIM, K, min_rows=500)
    index.put({f"k{i}": m[i] for i in range(1_000)})
    index.settle()  # clusters of 1,000 rows
    gate = threading.Event()
    build = Partition.build

    def held(
        matrix: npt.NDArray[np.float32], seed: int = 0
    ) -> tuple[Partition, npt.NDArray[np.intp]]:
        assert gate.wait(30)
        return build(matrix, seed)

    monkeypatch.setattr(Partition, "build", held)
    index.put({f"g{i}": m[1_000 + i] for i in range(600)})  # past 1.5x: due again
    record_true_lists(index)
    probe = clustered(rng, 10)
    none = np.full(10, -1, dtype=np.intp)
    check(index, probe, none)  # with the clusters in use; the new ones started, held
    assert index._rebuild is not None
    capacity = len(index._matrix)
    index.remove([f"k{i}" for i in range(0, 1_000, 4)])
    far = rng.normal(size=(5, DIM)).astype(np.float32)
    far /= np.linalg.norm(far, axis=1, keepdims=True)
    index.put({f"k{i}": far[n] for n, i in enumerate((1, 5, 9, 13, 17))})
    index.put({f"n{i}": m[2_000 + i] for i in range(800)})
    assert len(index._matrix) > capacity and not index._rebuild.done()
    gate.set()
    index.settle()
    clusters = index._clusters()
    # the clusters made from the 1,600 rows; or, when the rows assigned again at their use
    # made the index start another build and it finished already, those of every row
    assert clusters is not None and clusters.partition.built_rows in (1_600, len(index))
    queries = np.concatenate([probe, far, index.matrix[::7]])
    bounds = clusters.partition.bounds(queries)
    assert (queries @ index.matrix.T <= bounds[:, clusters.of_row]).all()
    record_true_lists(index, 0.1)
    check(index, probe, none)
    moved = np.asarray([index.rows[f"k{i}"] for i in (1, 5, 9, 13, 17)], dtype=np.intp)
    check(index, index.matrix[moved], moved)


@pytest.mark.parametrize("screen", [False, True])
def test_rows_written_while_the_sorted_copy_is_made_are_mended_when_it_is_taken_over(
    monkeypatch: pytest.MonkeyPatch, screen: bool
) -> None:
    """The worker copies the rows in cluster order as the index writes them (here the copy is
    made before the writes, and held until they are done; the arrays have room, so it is taken
    over): rows removed, moved far and added meanwhile hold their latest vectors afterwards,
    and every answer is exact, also through the bfloat16 copy."""
    rng = np.random.default_rng(6)
    m = clustered(rng, 3_000)
    index = MemoryIndex(DIM, K, min_rows=500, screen=screen)
    index.reserve(4_000)  # no reallocation below
    index.put({f"k{i}": m[i] for i in range(1_000)})
    index.settle()
    gate = threading.Event()
    copied = threading.Event()
    made = Sorted.of

    def held(*args: Any) -> Sorted:
        out = made(*args)
        copied.set()
        assert gate.wait(30)
        return out

    monkeypatch.setattr(Sorted, "of", held)
    latest = {f"k{i}": m[i] for i in range(1_000)}
    latest.update({f"g{i}": m[1_000 + i] for i in range(600)})
    index.put({k: v for k, v in latest.items() if k.startswith("g")})  # due again
    index.search(m[:2], np.full(2, -1, dtype=np.intp), None)  # starts the new clusters, held
    assert index._rebuild is not None and copied.wait(30)
    gone = [f"k{i}" for i in range(0, 1_000, 4)]
    index.remove(gone)
    for key in gone:
        del latest[key]
    far = rng.normal(size=(5, DIM)).astype(np.float32)
    far /= np.linalg.norm(far, axis=1, keepdims=True)
    moved = {f"k{i}": far[n] for n, i in enumerate((1, 5, 9, 13, 17))}
    added = {f"n{i}": m[2_000 + i] for i in range(300)}
    index.put(moved)
    index.put(added)
    latest.update(moved)
    latest.update(added)
    matrix = index._matrix
    gate.set()
    index.settle()
    assert index._matrix is not matrix  # the copy in cluster order was taken over
    assert sorted(index.keys) == sorted(latest)
    for key, vector in latest.items():
        assert np.allclose(index.matrix[index.rows[key]], vector, atol=1e-6), key
    record_true_lists(index, 0.1)
    probe = clustered(rng, 10)
    check(index, probe, np.full(10, -1, dtype=np.intp))
    spread = rng.normal(size=(20, DIM)).astype(np.float32)  # near no cluster: the full product
    spread /= np.linalg.norm(spread, axis=1, keepdims=True)
    check(index, spread, np.full(20, -1, dtype=np.intp), entries=False)
    own = np.asarray([index.rows[k] for k in moved], dtype=np.intp)
    check(index, index.matrix[own], own)


def test_a_sorted_copy_that_cannot_be_made_leaves_the_clusters_in_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Out of memory while copying the rows in cluster order (torch raises RuntimeError): the
    new clusters are put to use all the same, the rows stay where they were, answers exact."""

    def fails(*args: Any) -> Sorted:
        raise RuntimeError("DefaultCPUAllocator: not enough memory")

    monkeypatch.setattr(Sorted, "of", fails)
    rng = np.random.default_rng(9)
    m = clustered(rng, 1_500)
    index = MemoryIndex(DIM, K, min_rows=500, background=False, screen=True)
    index.put({f"k{i}": m[i] for i in range(1_500)})
    record_true_lists(index)
    before = list(index.keys)
    index.settle()
    assert index._partition is not None and index.keys == before
    own = np.arange(0, 1_500, 50, dtype=np.intp)
    check(index, index.matrix[own], own)


def test_group_sums_equal_a_loop_also_for_empty_groups() -> None:
    """k-means' sums per cluster (by one sort) against adding row by row; a cluster with no
    row sums to zero."""
    rng = np.random.default_rng(6)
    rows = rng.normal(size=(500, DIM)).astype(np.float32)
    groups = rng.choice([0, 2, 3, 7], size=500)
    want = np.zeros((9, DIM))
    for row, group in zip(rows, groups, strict=True):
        want[group] += row
    assert np.allclose(_sums(rows, groups, 9), want, atol=1e-9)
    assert not _sums(rows[:0], groups[:0], 3).any()


def test_a_bfloat16_screen_gives_the_float32_answers_at_the_rounding_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a bfloat16 copy scoring every block roughly first, the top k and the entries are
    the float32 search's, also where they turn on less than bfloat16's rounding: floors set
    1e-5 to 3e-3 above or below a query's score with the row (bfloat16 moves a score by up to
    ~4e-3), rows that score within ~1e-3 of each other (near-copies), items out of stock,
    a query's own row, rows removed (the last row moved into their place), vectors replaced
    and the copy grown past its first capacity."""
    monkeypatch.setattr(search_module, "SCREEN_MIN_CELLS", 1)  # every block screened
    rng = np.random.default_rng(11)
    dim = 64
    base = rng.normal(size=(300, dim))
    twins = np.repeat(base[:30], 8, axis=0) + rng.normal(scale=0.1, size=(240, dim))
    m = np.concatenate([base, twins, rng.normal(size=(1_180, dim))])
    m = (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)
    queries = base[:40] + rng.normal(scale=0.3, size=(40, dim))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    exact = queries.astype(np.float64) @ m.T.astype(np.float64)
    picked = rng.integers(0, len(queries), len(m))
    gaps = rng.uniform(1e-5, 3e-3, len(m)) * rng.choice([-1.0, 1.0], len(m))
    floors = exact[picked, np.arange(len(m))] + gaps
    keys = [f"k{i}" for i in range(len(m))]
    lists = {
        key: NeighbourState(
            tuple(keys[(i + j + 1) % len(m)] for j in range(K)),
            tuple(float(floors[i]) + 0.01 * (K - 1 - j) for j in range(K)),
        )
        for i, key in enumerate(keys)
    }
    indexes = []
    for screen in (False, True):
        index = MemoryIndex(dim, K, min_rows=10**9, screen=screen)
        index.put({key: m[i] for i, key in enumerate(keys)})
        index.set_lists(lists)
        index.remove([f"k{i}" for i in range(1_500, 1_720, 7)])
        index.put({f"k{i}": m[i + 1] for i in range(700, 720)})  # moved: replaced vectors
        index.hide({f"k{i}": True for i in range(300, 420, 9)})
        indexes.append(index)
    plain, screened = indexes
    assert screened._rough is not None and len(screened._rough) > 1_024  # grown
    own = np.full(len(queries), -1, dtype=np.intp)
    own[:5] = [plain.rows[f"k{i}"] for i in range(5)]
    found = [i.search(queries, own, own[own >= 0]) for i in indexes]
    for q in range(len(queries)):
        assert found[1].top_rows[q].tolist() == found[0].top_rows[q].tolist(), q
        assert found[1].top_scores[q] == pytest.approx(found[0].top_scores[q], abs=1e-6)
    want = {(q, r) for q, r, _ in found[0].entries}
    got = {(q, r) for q, r, _ in found[1].entries}
    assert got == want and len(got) == len(found[1].entries)
    assert len(want) > 100  # the floors' gaps made both entries and near misses
    tops = [i.search(i.matrix[:64], np.arange(64, dtype=np.intp), None) for i in indexes]
    assert [r.tolist() for r in tops[1].top_rows] == [r.tolist() for r in tops[0].top_rows]


def test_a_screened_scan_lists_no_hidden_row_when_fewer_than_k_are_visible(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A catalogue where hidden rows and a query's own row leave fewer than k rows to list:
    the screened scan's rough k-th best is then -inf, and every visible row is a candidate,
    but no hidden one (the float32 search's answer, row for row)."""
    monkeypatch.setattr(search_module, "SCREEN_MIN_CELLS", 1)  # every block screened
    rng = np.random.default_rng(21)
    m = rng.normal(size=(9, DIM))
    m = (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)
    keys = [f"k{i}" for i in range(len(m))]
    found = []
    for screen in (False, True):
        index = MemoryIndex(DIM, K, min_rows=10**9, screen=screen)
        index.put({key: m[i] for i, key in enumerate(keys)})
        index.hide({f"k{i}": True for i in range(4, 9)})
        own = np.array([index.rows["k0"], -1, -1], dtype=np.intp)
        found.append(index.search(m[[0, 1, 5]], own, None))
    hidden = {index.rows[f"k{i}"] for i in range(4, 9)}
    for q in range(3):
        assert found[1].top_rows[q].tolist() == found[0].top_rows[q].tolist(), q
        assert not hidden & set(found[1].top_rows[q].tolist()), q
    assert [len(t) for t in found[1].top_rows] == [3, 4, 4]


def test_a_block_read_as_runs_of_rows_equals_the_gathered_product() -> None:
    """Rows of a cluster are read as their longest run in place and the rest gathered: the
    scores are the gathered block's, column for column, whatever runs the rows make."""
    rng = np.random.default_rng(4)
    matrix = rng.normal(size=(500, DIM)).astype(np.float32)
    queries = rng.normal(size=(3, DIM)).astype(np.float32)
    for rows in (
        np.arange(100, 200),  # one run
        np.concatenate([[3, 40], np.arange(100, 200), [250, 499]]),  # a run in the middle
        np.concatenate([np.arange(0, 80), [90]]),
        np.arange(0, 500, 2),  # no run: gathered
    ):
        for q in (queries, queries[:1]):
            got = search_module._rows_product(q, matrix, rows)
            assert got.shape == (len(q), len(rows))
            assert np.allclose(got, q @ matrix[rows].T, atol=1e-5)


def test_clusters_that_only_hold_entered_lists_are_read_at_their_low_floors() -> None:
    """Lists with low floors (short of good neighbours) scattered among full ones: a cluster far
    from a query is read only at its rows whose floor its bound passes, and the entries equal
    brute force's, each row's once, with far fewer pairs scored than whole clusters hold."""
    rng = np.random.default_rng(5)
    m = clustered(rng, 4_000, groups=16)
    index = MemoryIndex(DIM, K, min_rows=500, background=False)
    index.put({f"k{i}": m[i] for i in range(3_960)})
    record_true_lists(index)
    # every 9th item's list as if its neighbours were poor: its floor anywhere from -0.5 to 0.9
    low = {}
    for n, key in enumerate(index.keys[::9]):
        floor = -0.5 + 1.4 * (n % 15) / 14
        low[key] = NeighbourState(
            tuple(index.keys[(n + j) % 100] for j in range(K)),
            tuple(floor + 0.01 * (K - j) for j in range(K)),
        )
    index.set_lists(low)
    new = {f"n{i}": m[3_960 + i] for i in range(40)}
    index.put(new)
    index.settle()
    own = np.asarray([index.rows[k] for k in new], dtype=np.intp)
    scored = check(index, index.matrix[own], own)
    found = index.search(index.matrix[own], own, own)
    assert found.clustered is True
    assert len(found.entries) > 40  # the low floors are entered from far away too
    assert scored < 40 * len(index) / 4


def test_a_batch_that_a_screen_scans_cheaper_in_full_skips_the_clusters() -> None:
    """Where the full product would be screened, a batch of queries whose clusters would each
    be a block of its own is scanned in full instead (cluster blocks cost several times a
    screened pair: bench/README.md); without a screen, or for one query, the clusters answer.
    Every answer equals brute force's."""
    rng = np.random.default_rng(9)
    m = clustered(rng, 4_000, groups=16)
    found = {}
    for screen in (False, True):
        index = MemoryIndex(DIM, K, min_rows=500, background=False, screen=screen)
        index.put({f"k{i}": m[i] for i in range(3_936)})
        record_true_lists(index)
        new = {f"n{i}": m[3_936 + i] for i in range(64)}
        index.put(new)
        index.settle()
        own = np.asarray([index.rows[k] for k in new], dtype=np.intp)
        check(index, index.matrix[own], own)
        found[screen] = index.search(index.matrix[own], own, own).clustered
        check(index, index.matrix[own[:1]], own[:1])
        assert index.search(index.matrix[own[:1]], own[:1], own[:1]).clustered is True
    assert found == {False: True, True: False}


@pytest.mark.parametrize("shape", [(3, 40), (7, 13), (1, 5), (5, 8), (0, 9)])
def test_the_sparse_nonzero_is_numpys_in_the_same_order(shape: tuple[int, int]) -> None:
    """Masks of sizes that are and are not whole 64-bit words, sparse, dense, empty and full."""
    rng = np.random.default_rng(sum(shape))
    for share in (0.0, 0.01, 0.3, 1.0):
        mask = rng.random(shape) < share
        for given in (mask, np.repeat(mask, 2, axis=1)[:, ::2]):  # also a strided view
            got = search_module._sparse_nonzero(given)
            want = np.nonzero(given)
            assert [g.tolist() for g in got] == [w.tolist() for w in want], share


def test_a_screened_scan_is_charged_a_read_of_every_row_per_chunk_of_queries() -> None:
    """The full scan splits its queries into chunks that each read every row: at 1,000,000
    rows 256 queries are 16 reads, which the clusters' rest is weighed against."""
    rows, queries = 1_000_000, 256
    assert search_module._chunk_queries(rows) == 16
    read_once = queries * rows + search_module._FULL_ROW * rows
    pairs = read_once // search_module._CLUSTER_PAIR + 1  # dearer than one read, not sixteen
    assert not search_module._cheaper_in_full(pairs, 0, queries, rows, screened=True)
    assert search_module._cheaper_in_full(pairs * 3, 0, queries, rows, screened=True)
    quarter = int(search_module.FULL_SCAN_SHARE * queries * rows)  # without a screen
    assert search_module._cheaper_in_full(quarter + 1, 0, queries, rows, screened=False)
    assert not search_module._cheaper_in_full(quarter, 0, queries, rows, screened=False)
