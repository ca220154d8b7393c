"""Both neighbour finders against numpy brute force, over a real Qdrant Edge store.

A clustered catalogue of 600 unit vectors (dimension 24) is stored with the lists a consumer
would have recorded (brute-force top-k, floor = k-th score). For new vectors, "whose lists does
each enter" and "what is each item's top k" are computed here with plain numpy and compared with
what :class:`MemoryFinder` and :class:`StoreFinder` answer.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest

from stream.catalog.index import NO_FLOOR
from stream.catalog.neighbours import (
    MemoryFinder,
    NeighbourFinder,
    NeighbourState,
    StoreFinder,
    forget,
)
from stream.store import StoredPoint
from stream.store.edge import EdgeStore

K = 5
DIM = 24
N = 600
COLLECTION = "items"
Matrix = npt.NDArray[np.float32]


def unit_rows(m: Matrix) -> Matrix:
    return (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)


def clustered(rng: np.random.Generator, n: int) -> Matrix:
    centres = rng.normal(size=(12, DIM))
    return unit_rows(centres[rng.integers(0, 12, n)] + 0.35 * rng.normal(size=(n, DIM)))


def brute_lists(keys: list[str], m: Matrix) -> dict[str, list[tuple[str, float]]]:
    sims = m @ m.T
    np.fill_diagonal(sims, -np.inf)
    out = {}
    for i, key in enumerate(keys):
        order = np.argsort(-sims[i])[:K]
        out[key] = [(keys[j], float(sims[i, j])) for j in order]
    return out


@pytest.fixture(scope="module")
def catalogue() -> Iterator[tuple[EdgeStore, list[str], Matrix]]:
    rng = np.random.default_rng(7)
    keys = [f"sku-{i:04d}" for i in range(N)]
    m = clustered(rng, N)
    lists = brute_lists(keys, m)
    # a few items without a recorded list (a crash before their first list was recorded): the
    # processor writes new items with the floor NO_FLOOR, which every item beats
    unrecorded = set(keys[::97])
    with tempfile.TemporaryDirectory() as root:
        store = EdgeStore(root)
        store.ensure_collection(COLLECTION, DIM)
        points = []
        for i, key in enumerate(keys):
            payload: dict[str, object] = {"nb_floor": NO_FLOOR}
            if key not in unrecorded:
                payload = NeighbourState.from_pairs(lists[key]).payload(K)
            points.append(StoredPoint(key, payload, m[i]))
        store.upsert(COLLECTION, points)
        yield store, keys, m
        store.close()


def finders(store: EdgeStore) -> list[NeighbourFinder]:
    forget(store)
    return [MemoryFinder(store, COLLECTION, K, DIM), StoreFinder(store, COLLECTION, K, page=16)]


def test_entered_by_matches_brute_force(catalogue: tuple[EdgeStore, list[str], Matrix]) -> None:
    store, keys, m = catalogue
    rng = np.random.default_rng(11)
    new = clustered(rng, 40)
    changed = {f"new-{i}": new[i] for i in range(len(new))}
    floors = {}
    for p in store.scroll(COLLECTION):
        floors[p.key] = float(p.payload["nb_floor"])
    expected: dict[str, dict[str, float]] = {}
    for x, vector in changed.items():
        scores = m @ vector
        for j, key in enumerate(keys):
            if scores[j] > floors[key]:
                expected.setdefault(key, {})[x] = float(scores[j])
    assert 0 < sum(map(len, expected.values())) < len(keys) * len(changed) / 4  # selective
    for finder in finders(store):
        got = finder.entered_by(changed)
        assert got.keys() == expected.keys(), type(finder).__name__
        for owner, entries in expected.items():
            assert got[owner].keys() == entries.keys(), (type(finder).__name__, owner)
            for x, score in entries.items():
                assert got[owner][x] == pytest.approx(score, abs=1e-5)


def test_top_k_matches_brute_force(catalogue: tuple[EdgeStore, list[str], Matrix]) -> None:
    store, keys, m = catalogue
    want = brute_lists(keys, m)
    asked = [*keys[::7], "not-stored"]
    for finder in finders(store):
        got = finder.top_k(asked)
        assert set(got) == set(keys[::7]), type(finder).__name__
        for key in keys[::7]:
            assert got[key].ids == tuple(i for i, _ in want[key]), (type(finder).__name__, key)
            assert got[key].scores == pytest.approx([s for _, s in want[key]], abs=1e-5)


def test_memory_finder_follows_writes_and_recorded_floors(
    catalogue: tuple[EdgeStore, list[str], Matrix],
) -> None:
    """What the consumer reports through written()/recorded() is what later answers use,
    and reset() makes the next answer come from the store again."""
    store, keys, m = catalogue
    finder = MemoryFinder(store, COLLECTION, K, DIM)
    finder.reset()
    twin = m[3] * np.float32(1.0)  # an exact copy of sku-0003
    finder.written({"twin": twin}, ["sku-0004"])
    top = finder.top_k(["sku-0003"])["sku-0003"]
    assert top.ids[0] == "twin" and top.scores[0] == pytest.approx(1.0, abs=1e-6)
    assert "sku-0004" not in finder.top_k(keys[:50])["sku-0005"].ids
    # a floor of 1.5 cannot be beaten: sku-0003 stops being entered by its twin
    finder.recorded({"sku-0003": {"nb_floor": 1.5}})
    assert "sku-0003" not in finder.entered_by({"probe": m[3]})
    finder.reset()  # the store never saw those writes
    assert "twin" not in finder.top_k(["sku-0003"])["sku-0003"].ids
    assert "sku-0003" in finder.entered_by({"probe": m[3]})
