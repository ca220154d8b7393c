"""Both neighbour finders against numpy brute force, over a real Qdrant Edge store.

A clustered catalogue of 600 unit vectors (dimension 24) is stored with the lists a consumer
would have recorded (brute-force top-k, floor = k-th score). For new vectors, "whose lists does
each enter" and "what is each item's top k" are computed here with plain numpy and compared with
what :class:`MemoryFinder` and :class:`StoreFinder` answer.
"""

from __future__ import annotations

import json
import tempfile
import tracemalloc
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest

from stream.catalog.lists import NO_FLOOR, NeighbourState
from stream.catalog.neighbours import (
    ListRecord,
    MemoryFinder,
    NeighbourFinder,
    StoreFinder,
    adopt_records,
    finder_for,
)
from stream.collections import ITEM_LISTS
from stream.settings import Settings
from stream.store import StoredPoint
from stream.store.edge import EdgeStore

K = 5
DIM = 24
N = 600
ONE = np.ones(1, dtype=np.float32)
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
        store.ensure_collection(ITEM_LISTS, 1)
        points = []
        for i, key in enumerate(keys):
            payload: dict[str, object] = {"nb_floor": NO_FLOOR, "version": i}
            if key not in unrecorded:
                payload = {**NeighbourState.from_pairs(lists[key]).payload(K), "version": i}
            points.append(StoredPoint(key, payload, m[i]))
        store.upsert(COLLECTION, points)
        yield store, keys, m
        store.close()


def finders(store: EdgeStore) -> list[NeighbourFinder]:
    return [MemoryFinder(store, COLLECTION, K, DIM), StoreFinder(store, COLLECTION, K, page=16)]


def test_entered_by_matches_brute_force(catalogue: tuple[EdgeStore, list[str], Matrix]) -> None:
    """Every list a new vector enters, with its score; an item with no recorded list is
    named (its list is computed afresh), with entries or not: the memory finder gives none."""
    store, keys, m = catalogue
    rng = np.random.default_rng(11)
    new = clustered(rng, 40)
    changed = {f"new-{i}": new[i] for i in range(len(new))}
    floors = {}
    unrecorded = set()
    for p in store.scroll(COLLECTION):
        floors[p.key] = float(p.payload["nb_floor"])
        if "nb_ids" not in p.payload:
            unrecorded.add(p.key)
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
            if owner in unrecorded:
                assert got[owner].keys() <= entries.keys(), (type(finder).__name__, owner)
                if isinstance(finder, MemoryFinder):
                    assert got[owner] == {}, owner
            else:
                assert got[owner].keys() == entries.keys(), (type(finder).__name__, owner)
            for x, score in got[owner].items():
                assert score == pytest.approx(entries[x], abs=1e-5)


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


def test_listing_and_records_match_a_scan_of_the_recorded_lists(
    catalogue: tuple[EdgeStore, list[str], Matrix],
) -> None:
    """Which lists name an item, and what each item's record says, from both finders: the
    memory finder reads the item-payload records while its journal is empty."""
    store, keys, _ = catalogue
    recorded = {p.key: NeighbourState.from_payload(p.payload) for p in store.scroll(COLLECTION)}
    probes = [[keys[0]], keys[10:14], ["not-stored"], []]
    asked = [*keys[::50], "not-stored"]
    for finder in finders(store):
        name = type(finder).__name__
        for probe in probes:
            want = {k for k, s in recorded.items() if s is not None and set(s.ids) & set(probe)}
            assert finder.listing(probe) == want, (name, probe)
        got = finder.records(asked)
        assert set(got) == set(keys[::50]), name
        for key in keys[::50]:
            assert got[key] == ListRecord(keys.index(key), recorded[key]), (name, key)


def test_memory_finder_follows_writes_and_recorded_lists(
    catalogue: tuple[EdgeStore, list[str], Matrix],
) -> None:
    """What the consumer reports through written()/record() is what later answers use, and
    reset() makes the next answer come from the store again."""
    store, keys, m = catalogue
    finder = MemoryFinder(store, COLLECTION, K, DIM)
    finder.reset()
    twin = m[3] * np.float32(1.0)  # an exact copy of sku-0003
    finder.written({"twin": twin}, ["sku-0004"], {"twin": 9})
    top = finder.top_k(["sku-0003"])["sku-0003"]
    assert top.ids[0] == "twin" and top.scores[0] == pytest.approx(1.0, abs=1e-6)
    assert "sku-0004" not in finder.top_k(keys[:50])["sku-0005"].ids
    assert finder.records(["twin"]) == {"twin": ListRecord(9, None)}
    finder.reset()  # the store never saw those writes
    assert "twin" not in finder.top_k(["sku-0003"])["sku-0003"].ids
    assert "sku-0003" in finder.entered_by({"probe": m[3]})


@pytest.fixture
def small() -> Iterator[tuple[EdgeStore, Matrix]]:
    """A store of its own (these tests write records): 40 items without records."""
    m = clustered(np.random.default_rng(5), 40)
    with tempfile.TemporaryDirectory() as root:
        store = EdgeStore(root)
        store.ensure_collection(COLLECTION, DIM)
        store.ensure_collection(ITEM_LISTS, 1)
        store.upsert(
            COLLECTION,
            [StoredPoint(f"s{i}", {"nb_floor": NO_FLOOR}, m[i]) for i in range(len(m))],
        )
        yield store, m
        store.close()


def full_list(score: float) -> NeighbourState:
    return NeighbourState(tuple(f"s{30 + j}" for j in range(K)), (score,) * K)


def test_memory_finder_records_go_to_the_journal_and_survive_a_reload(
    small: tuple[EdgeStore, Matrix],
) -> None:
    """record() writes one journal entry in item_lists (the items keep no record), holding
    the messages given for it, and a reloaded finder answers with those lists: a floor of 1.5
    cannot be beaten."""
    store, m = small
    finder = MemoryFinder(store, COLLECTION, K, DIM)
    message = b'{"item_id":"s4","neighbours":[{"item_id":"s30","score":0.5}],"model":"m"}'
    finder.record({"s3": full_list(1.5), "s4": NeighbourState(("s30",), (0.5,))}, {"s4": message})
    [entry] = list(store.scroll(ITEM_LISTS))
    assert json.loads(entry.payload["keys"]) == ["s3", "s4"]
    assert entry.payload["lists"].split("\n")[1] == message.decode()
    assert "nb_ids" not in store.retrieve(COLLECTION, ["s3"])["s3"].payload
    finder.reset()
    assert finder.records(["s3"])["s3"].state == full_list(1.5)
    assert finder.records(["s4"])["s4"].state == NeighbourState(("s30",), (0.5,))
    assert "s3" not in finder.entered_by({"probe": m[3]})
    assert "s4" in finder.entered_by({"probe": m[4]})
    assert finder.listing(["s30"]) == {"s3", "s4"}


def test_a_damaged_journal_line_is_no_record_not_the_older_item_payload_one(
    small: tuple[EdgeStore, Matrix],
) -> None:
    store, _ = small
    store.set_payload(COLLECTION, {"s7": full_list(0.3).payload(K)})  # an older record
    MemoryFinder(store, COLLECTION, K, DIM).record({"s7": full_list(0.5)}, {"s7": b"[not json"})
    finder = MemoryFinder(store, COLLECTION, K, DIM)
    finder.reset()
    assert finder.records(["s7"])["s7"].state is None


def test_a_journal_that_cannot_be_read_is_cleared_and_no_list_is_recorded(
    small: tuple[EdgeStore, Matrix],
) -> None:
    """An entry whose keys cannot be read could have held any item's newer record: none is
    trusted, the item-payload ones included (durably: also after the next load), and the
    journal starts again; the next lists are recorded as usual."""
    store, _ = small
    store.set_payload(COLLECTION, {"s7": full_list(0.3).payload(K)})
    finder = MemoryFinder(store, COLLECTION, K, DIM)
    finder.record({"s1": full_list(0.2)})
    [entry] = list(store.scroll(ITEM_LISTS))
    store.upsert(ITEM_LISTS, [StoredPoint(entry.key, {**entry.payload, "keys": "[oops"}, ONE)])
    nothing = {"s1": ListRecord(None, None), "s7": ListRecord(None, None)}
    finder.reset()
    assert finder.records(["s1", "s7"]) == nothing
    finder.reset()
    assert finder.records(["s1", "s7"]) == nothing
    finder.record({"s1": full_list(0.4)})
    finder.reset()
    assert finder.records(["s1", "s7"]) == {**nothing, "s1": ListRecord(None, full_list(0.4))}


def test_store_finder_adopting_a_journal_that_cannot_be_read_trusts_no_record(
    small: tuple[EdgeStore, Matrix],
) -> None:
    """The item payloads' records are older than what the damaged journal held: the store
    finder keeps none of them (every item enters those lists, and each is recomputed)."""
    store, m = small
    store.set_payload(COLLECTION, {"s7": full_list(1.5).payload(K)})
    MemoryFinder(store, COLLECTION, K, DIM).record({"s1": full_list(0.2)})
    [entry] = list(store.scroll(ITEM_LISTS))
    store.upsert(ITEM_LISTS, [StoredPoint(entry.key, {**entry.payload, "keys": "[oops"}, ONE)])
    finder = StoreFinder(store, COLLECTION, K, page=8)
    finder.adopt_packed()
    assert list(store.scroll(ITEM_LISTS)) == []
    assert finder.records(["s1", "s7"]) == {
        "s1": ListRecord(None, None),
        "s7": ListRecord(None, None),
    }
    assert finder.listing(["s30"]) == set()
    assert "s7" in finder.entered_by({"probe": m[7]})


def test_a_removed_item_takes_its_record_and_orphans_are_dropped_on_load(
    small: tuple[EdgeStore, Matrix],
) -> None:
    store, m = small
    finder = MemoryFinder(store, COLLECTION, K, DIM)
    finder.record({"s1": full_list(0.2), "s2": full_list(0.2)})
    store.delete(COLLECTION, ["s1", "s2"])
    finder.written({}, ["s1"], {})  # s1 through the finder; s2 behind its back (a crash)
    finder.reset()
    assert finder.records(["s1", "s2"]) == {}
    store.upsert(COLLECTION, [StoredPoint("s1", {}, m[1]), StoredPoint("s2", {}, m[2])])
    finder.reset()  # both come back: neither has a list yet
    assert finder.records(["s1", "s2"]) == {
        "s1": ListRecord(None, None),
        "s2": ListRecord(None, None),
    }


def test_store_finder_adopts_packed_records_into_the_item_payloads(
    small: tuple[EdgeStore, Matrix],
) -> None:
    """Switching from memory to store search: the packed records move into the item payloads
    (an item deleted meanwhile gets none), item_lists is emptied, and the store finder's
    answers (floor filter, nb_ids index) use them."""
    store, m = small
    MemoryFinder(store, COLLECTION, K, DIM).record(
        {"s3": full_list(1.5), "s5": full_list(0.1), "s6": full_list(0.1)}
    )
    store.delete(COLLECTION, ["s6"])
    finder = StoreFinder(store, COLLECTION, K, page=8)
    finder.adopt_packed()
    assert list(store.scroll(ITEM_LISTS)) == []
    payload = store.retrieve(COLLECTION, ["s3"])["s3"].payload
    assert payload["nb_floor"] == 1.5 and payload["nb_ids"] == list(full_list(1.5).ids)
    assert finder.records(["s3", "s6"]) == {"s3": ListRecord(None, full_list(1.5))}
    assert finder.listing(["s30"]) == {"s3", "s5"}
    assert "s3" not in finder.entered_by({"probe": m[3]})
    finder.adopt_packed()  # nothing left to adopt: a no-op
    assert store.retrieve(COLLECTION, ["s3"])["s3"].payload["nb_floor"] == 1.5


@pytest.mark.parametrize(("search", "moved"), [("store", True), ("memory", False)])
def test_records_move_at_start_up_with_store_search_only_and_never_when_building_a_finder(
    small: tuple[EdgeStore, Matrix], search: str, moved: bool
) -> None:
    """Building a finder migrates nothing; the start-up step moves a memory finder's records
    into the item payloads for store search, and leaves them where memory search reads them."""
    store, _ = small
    MemoryFinder(store, COLLECTION, K, DIM).record({"s3": full_list(1.5)})
    settings = Settings(neighbour_search=search)
    finder_for(store, settings, COLLECTION, DIM)
    assert len(list(store.scroll(ITEM_LISTS))) == 1
    adopt_records(store, settings, COLLECTION)
    assert (list(store.scroll(ITEM_LISTS)) == []) is moved
    assert ("nb_ids" in store.retrieve(COLLECTION, ["s3"])["s3"].payload) is moved


def test_a_load_in_chunks_smaller_than_the_catalogue_holds_what_the_store_holds(
    small: tuple[EdgeStore, Matrix],
) -> None:
    """Loaded 3 items at a time (40 stored): every vector (unit length), version, hidden flag
    and record is the store's, a journal record still wins over an item-payload one, and the
    answers are the brute-force ones."""
    store, m = small
    older = {"s7": full_list(0.3).payload(K), "s8": full_list(0.2).payload(K)}
    store.set_payload(COLLECTION, older)
    store.set_payload(COLLECTION, {"s9": {"in_stock": False, "version": 9}})
    MemoryFinder(store, COLLECTION, K, DIM).record({"s7": full_list(0.5), "s11": full_list(0.6)})
    finder = MemoryFinder(store, COLLECTION, K, DIM, in_stock_only=True, load_chunk=3)
    index = finder.index
    assert sorted(index.keys) == sorted(f"s{i}" for i in range(len(m)))
    for i in range(len(m)):
        assert index.matrix[index.rows[f"s{i}"]] == pytest.approx(m[i], abs=1e-6)
    assert index.versions["s9"] == 9 and index.versions["s1"] is None
    hidden = index.hidden
    assert hidden is not None and [index.keys[r] for r in np.flatnonzero(hidden)] == ["s9"]
    got = finder.records(["s7", "s8", "s11", "s12"])
    assert {k: r.state for k, r in got.items()} == {
        "s7": full_list(0.5),
        "s8": full_list(0.2),
        "s11": full_list(0.6),
        "s12": None,
    }
    sims = m @ m.T
    np.fill_diagonal(sims, -np.inf)
    sims[:, 9] = -np.inf  # out of stock: in no list
    want = [f"s{j}" for j in np.argsort(-sims[0])[:K]]
    assert list(finder.top_k(["s0"])["s0"].ids) == want


def test_loading_the_index_holds_one_copy_of_the_catalogue_not_several() -> None:
    """The load streams the store into the index's matrix, a chunk at a time: beside the
    index's own arrays, less than one more copy of the catalogue is allocated at once
    (gathering every vector first, then normalising a copy, held about four copies). Counted
    by tracemalloc (numpy's buffers included)."""
    n, dim = 10_000, 256
    m = unit_rows(np.random.default_rng(3).normal(size=(n, dim)).astype(np.float32))
    with tempfile.TemporaryDirectory() as root:
        store = EdgeStore(root)
        store.ensure_collection(COLLECTION, dim)
        store.ensure_collection(ITEM_LISTS, 1)
        for start in range(0, n, 2_000):
            store.upsert(
                COLLECTION,
                [StoredPoint(f"k{i}", {"version": i}, m[i]) for i in range(start, start + 2_000)],
            )
        finder = MemoryFinder(store, COLLECTION, K, dim)
        finder.load_chunk = 500
        tracemalloc.start()
        try:
            index = finder.index
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(index) == n
        # beside the index's own arrays (reserved past the catalogue; the matrix's unwritten
        # pages take no memory, but tracemalloc counts them), less than one more catalogue
        reserved = sum(a.nbytes for a in index._columns())
        extra = peak - reserved
        assert extra < m.nbytes, f"{extra / 1e6:.1f} MB beside a {m.nbytes / 1e6:.1f} MB matrix"
        store.close()


def test_the_first_batch_after_a_load_does_not_copy_the_catalogue() -> None:
    """The copy is loaded with room to grow: new items written right after a start go into
    the loaded matrix (a copy of it took 0.5 s at 100,000 items and held two at once)."""
    n = 2_100  # past twice the index's first capacity: reserved at n exactly
    m = unit_rows(np.random.default_rng(4).normal(size=(n + 10, DIM)).astype(np.float32))
    with tempfile.TemporaryDirectory() as root:
        store = EdgeStore(root)
        store.ensure_collection(COLLECTION, DIM)
        store.ensure_collection(ITEM_LISTS, 1)
        store.upsert(COLLECTION, [StoredPoint(f"k{i}", {}, m[i]) for i in range(n)])
        finder = MemoryFinder(store, COLLECTION, K, DIM, load_chunk=100)
        loaded = finder.index._matrix
        finder.written({f"n{i}": m[n + i] for i in range(10)}, [], {})
        assert finder.index._matrix is loaded and len(finder.index) == n + 10
        store.close()


def test_a_catalogue_growing_from_empty_keeps_its_copy_in_place() -> None:
    """A copy loaded from an empty store takes 20,000 new items without copying its matrix (a
    copy at each doubling held the loop for a steady load's events)."""
    m = unit_rows(np.random.default_rng(5).normal(size=(20_000, DIM)).astype(np.float32))
    with tempfile.TemporaryDirectory() as root:
        store = EdgeStore(root)
        store.ensure_collection(COLLECTION, DIM)
        store.ensure_collection(ITEM_LISTS, 1)
        finder = MemoryFinder(store, COLLECTION, K, DIM)
        loaded = finder.index._matrix
        for start in range(0, len(m), 2_000):
            finder.written({f"n{i}": m[i] for i in range(start, start + 2_000)}, [], {})
        assert finder.index._matrix is loaded and len(finder.index) == len(m)
        store.close()


@pytest.mark.parametrize("order", [True, False])
def test_the_memory_finder_keeps_rows_in_cluster_order_as_the_settings_say(
    small: tuple[EdgeStore, Matrix], order: bool
) -> None:
    """RECSTREAM_NEIGHBOUR_CLUSTER_ORDER reaches the finder's in-memory index."""
    store, _ = small
    settings = Settings(neighbour_search="memory", neighbour_cluster_order=order)
    finder = finder_for(store, settings, COLLECTION, DIM)
    assert isinstance(finder, MemoryFinder)
    assert finder.index._cluster_order is order
