"""The same behaviour, checked on every VectorStore adapter: the embedded Qdrant Edge shard and
qdrant-client (its local mode here; a Qdrant server with --docker)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from kit import store_adapter

from stream.store import FieldKind, SearchQuery, StoredPoint, VectorStore, Where
from stream.store.edge import EdgeStore

DIM = 16


def _unit(rng: np.random.Generator, n: int) -> npt.NDArray[np.float32]:
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    unit: npt.NDArray[np.float32] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


@pytest.fixture(params=["edge", "server-local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    s = store_adapter(request.param, tmp_path)
    s.ensure_collection("items", DIM, {"tags": FieldKind.KEYWORD, "floor": FieldKind.FLOAT})
    yield s
    s.close()


def _points(vectors: np.ndarray) -> list[StoredPoint]:
    return [
        StoredPoint(
            key=f"sku-{i}",
            vector=vectors[i],
            payload={"n": i, "tags": [f"t{i % 3}", "all"], "floor": i / 10},
        )
        for i in range(len(vectors))
    ]


def test_search_matches_brute_force(store: VectorStore) -> None:
    """Batched search returns the cosine top-k computed with numpy, best first, with keys."""
    rng = np.random.default_rng(1)
    vectors = _unit(rng, 60)
    store.upsert("items", _points(vectors))
    queries = _unit(rng, 5)
    results = store.search("items", [SearchQuery(q, 7) for q in queries])
    assert len(results) == 5
    for q, hits in zip(queries, results, strict=True):
        expected = np.argsort(-(vectors @ q))[:7]
        assert [h.key for h in hits] == [f"sku-{i}" for i in expected]
        assert [h.score for h in hits] == pytest.approx(
            [float(vectors[i] @ q) for i in expected], abs=1e-5
        )
        assert hits[0].payload["n"] == int(expected[0])


def test_filters_exclude_below_contains(store: VectorStore) -> None:
    """exclude_keys, below and contains each narrow search and keys_where as documented."""
    rng = np.random.default_rng(2)
    vectors = _unit(rng, 30)
    store.upsert("items", _points(vectors))
    q = vectors[0]
    hits = store.search("items", [SearchQuery(q, 30, Where(exclude_keys=frozenset({"sku-0"})))])[0]
    assert "sku-0" not in {h.key for h in hits} and len(hits) == 29
    below = store.search("items", [SearchQuery(q, 30, Where(below=("floor", 1.0)))])[0]
    assert {h.key for h in below} == {f"sku-{i}" for i in range(10)}
    tagged = set(store.keys_where("items", Where(contains=("tags", "t1"))))
    assert tagged == {f"sku-{i}" for i in range(30) if i % 3 == 1}


def test_exact_search_with_range_flag_and_contains_matches_brute_force(
    store: VectorStore,
) -> None:
    """An exact search filtered by a closed or half-open range, a boolean and a list member
    returns the numpy top-k of the points that satisfy every condition; a point without the
    ranged field never matches a range."""
    rng = np.random.default_rng(3)
    vectors = _unit(rng, 80)
    points = []
    for i in range(80):
        payload: dict[str, object] = {"in_stock": i % 4 != 0, "cats": [f"c{i % 3}", "all"]}
        if i % 10:
            payload["price"] = float(i)
        points.append(StoredPoint(f"sku-{i}", payload, vectors[i]))
    store.upsert("items", points)
    q = _unit(rng, 1)[0]
    cases = [
        (Where(within=("price", 10.0, 40.0)), lambda i: i % 10 and 10 <= i <= 40),
        (Where(within=("price", None, 25.5)), lambda i: i % 10 and i <= 25.5),
        (Where(within=("price", 60.0, None)), lambda i: i % 10 and i >= 60),
        (Where(flag=("in_stock", False)), lambda i: i % 4 == 0),
        (
            Where(
                exclude_keys=frozenset({"sku-5"}),
                contains=("cats", "c2"),
                within=("price", 5.0, 70.0),
                flag=("in_stock", True),
            ),
            lambda i: i != 5 and i % 3 == 2 and i % 10 and 5 <= i <= 70 and i % 4,
        ),
    ]
    for where, holds in cases:
        hits = store.search("items", [SearchQuery(q, 8, where, exact=True)])[0]
        allowed = [i for i in range(80) if holds(i)]
        expected = sorted(allowed, key=lambda i: -float(vectors[i] @ q))[:8]
        assert [h.key for h in hits] == [f"sku-{i}" for i in expected], where
        assert [h.score for h in hits] == pytest.approx(
            [float(vectors[i] @ q) for i in expected], abs=1e-5
        )


def test_retrieve_upsert_replaces_set_payload_merges(store: VectorStore) -> None:
    """Upsert replaces a point whole; set_payload merges fields and skips missing points."""
    rng = np.random.default_rng(3)
    vectors = _unit(rng, 3)
    store.upsert("items", _points(vectors))
    store.upsert("items", [StoredPoint("sku-1", {"n": 100}, vectors[2])])
    got = store.retrieve("items", ["sku-1", "nope"], with_vectors=True)
    assert set(got) == {"sku-1"}
    assert got["sku-1"].payload["n"] == 100 and "tags" not in got["sku-1"].payload
    assert got["sku-1"].vector is not None
    np.testing.assert_allclose(got["sku-1"].vector, vectors[2], atol=1e-6)
    store.set_payload("items", {"sku-1": {"extra": [1, 2]}, "ghost": {"extra": 1}})
    got = store.retrieve("items", ["sku-1", "ghost"])
    assert got["sku-1"].payload["n"] == 100 and got["sku-1"].payload["extra"] == [1, 2]
    assert "ghost" not in got


def test_set_payload_gives_each_point_its_own_fields_one_payload_written_together(
    store: VectorStore,
) -> None:
    """Points given one payload object (written as one run), points between them given others,
    and one given a payload equal to it in Python but not in type (0 for False) each end with
    exactly the fields, and types, they were given, merged into what they held."""
    rng = np.random.default_rng(4)
    keys = [f"sku-{i}" for i in range(6)]
    store.upsert(
        "items",
        [
            StoredPoint(k, {"n": i}, v)
            for i, (k, v) in enumerate(zip(keys, _unit(rng, 6), strict=True))
        ],
    )
    flag = {"pending": False}
    given = {
        "sku-0": flag,
        "sku-1": flag,
        "sku-2": {"pending": True, "tag": "x"},
        "ghost": flag,
        "sku-3": flag,
        "sku-4": {"pending": 0},
        "sku-5": flag,
    }
    assert given["sku-4"] == flag
    store.set_payload("items", given)
    got = store.retrieve("items", [*keys, "ghost"])
    assert "ghost" not in got
    for i, key in enumerate(keys):
        assert got[key].payload == {"n": i, "key": key, **given[key]}, key
        assert type(got[key].payload["pending"]) is type(given[key]["pending"]), key


def test_retrieve_reads_only_the_fields_asked_for(store: VectorStore) -> None:
    """With ``fields``, a point's payload holds those fields (and the key), nothing else; the
    vector comes all the same."""
    rng = np.random.default_rng(5)
    vectors = _unit(rng, 1)
    big = {"n": 7, "tags": ["a", "b"], "seen": [f"s-{k}" for k in range(50)]}
    store.upsert("items", [StoredPoint("sku-0", big, vectors[0])])
    got = store.retrieve("items", ["sku-0"], with_vectors=True, fields=["n", "absent"])["sku-0"]
    assert got.payload == {"n": 7, "key": "sku-0"}
    assert got.vector is not None
    assert store.retrieve("items", ["sku-0"])["sku-0"].payload["seen"] == big["seen"]


def test_delete_scroll_count(store: VectorStore) -> None:
    """Deleted points vanish from retrieve, search, scroll and count; unknown keys are ignored."""
    rng = np.random.default_rng(4)
    vectors = _unit(rng, 2500)
    store.upsert("items", _points(vectors))
    store.delete("items", ["sku-3", "sku-4", "never-existed"])
    assert store.count("items") == 2498
    keys = {p.key for p in store.scroll("items")}
    assert len(keys) == 2498 and "sku-3" not in keys
    assert store.retrieve("items", ["sku-3"]) == {}
    hits = store.search("items", [SearchQuery(vectors[3], 5)])[0]
    assert "sku-3" not in {h.key for h in hits}


def test_count_is_the_number_of_points_through_rewrites_deletes_and_reopening(
    tmp_path: Path,
) -> None:
    """The count equals the distinct keys a scroll finds after every kind of write: points
    written again, payloads and vectors changed, deleted and written back, the shard closed
    and opened again (the behaviour consumers compare it with their copy to find deletes)."""
    rng = np.random.default_rng(6)
    vectors = _unit(rng, 600)
    points = _points(vectors)
    s = EdgeStore(tmp_path)
    s.ensure_collection("items", DIM)

    def counted(store: VectorStore) -> int:
        n = store.count("items")
        assert n == len({p.key for p in store.scroll("items")})
        return n

    s.upsert("items", points[:500])
    s.upsert("items", points[400:600])  # 100 written again
    s.set_payload("items", {f"sku-{i}": {"n": -i} for i in range(0, 600, 7)})
    s.update_vectors("items", {f"sku-{i}": vectors[(i + 1) % 600] for i in range(0, 600, 5)})
    assert counted(s) == 600
    s.delete("items", [f"sku-{i}" for i in range(0, 600, 3)])
    assert counted(s) == 400
    s.upsert("items", points[0:30])  # ten of them deleted before
    assert counted(s) == 410
    s.close()
    again = EdgeStore(tmp_path)
    again.ensure_collection("items", DIM)
    assert counted(again) == 410
    again.delete("items", ["sku-1", "sku-33"])  # one there, one deleted before
    assert counted(again) == 409
    again.upsert("items", points[33:35])  # one deleted before, one there
    assert counted(again) == 410
    again.close()


def test_reopen_keeps_data(tmp_path: Path) -> None:
    """The embedded store survives close and reopen (what a consumer restart relies on)."""
    rng = np.random.default_rng(5)
    vectors = _unit(rng, 10)
    s = EdgeStore(tmp_path)
    s.ensure_collection("items", DIM)
    s.upsert("items", _points(vectors))
    s.close()
    s2 = EdgeStore(tmp_path)
    s2.ensure_collection("items", DIM)
    assert s2.count("items") == 10
    assert s2.retrieve("items", ["sku-9"])["sku-9"].payload["n"] == 9
    s2.close()


def test_top_by_orders_by_a_float_field(store: VectorStore) -> None:
    """top_by returns the points with the largest field values, largest first, skipping points
    without the field."""
    rng = np.random.default_rng(6)
    vectors = _unit(rng, 40)
    points = _points(vectors)
    points.append(StoredPoint("no-floor", {"n": -1}, vectors[0]))
    store.upsert("items", points)
    top = store.top_by("items", "floor", 5)
    assert [p.key for p in top] == [f"sku-{i}" for i in range(39, 34, -1)]
    assert [p.payload["floor"] for p in top] == sorted(
        (p.payload["floor"] for p in top), reverse=True
    )


def test_keys_where_pages_through_every_match(store: VectorStore) -> None:
    """Every matching key, however many (the lists naming an item are found this way: a cut
    list would leave a deleted item in lists), and at most ``limit`` when one is given."""
    # beyond one page, and on the embedded engine beyond the 10,000 one request once returned
    # (qdrant-client's local mode is pure Python: 10,000 points there take minutes)
    n = 10_050 if isinstance(store, EdgeStore) else 1_200
    vectors = np.zeros((n, DIM), dtype=np.float32)
    vectors[:, 0] = 1.0
    points = [
        StoredPoint(f"sku-{i}", {"tags": ["even" if i % 2 == 0 else "odd", "all"]}, vectors[i])
        for i in range(n)
    ]
    for start in range(0, n, 2_000):
        store.upsert("items", points[start : start + 2_000])
    assert len(set(store.keys_where("items", Where(contains=("tags", "all"))))) == n
    evens = set(store.keys_where("items", Where(contains=("tags", "even"))))
    assert evens == {f"sku-{i}" for i in range(0, n, 2)}
    assert len(store.keys_where("items", Where(contains=("tags", "all")), limit=1_100)) == 1_100


def test_update_vectors_keeps_the_payload(store: VectorStore) -> None:
    """A vector replaced alone: the payload (a list record another process wrote) stays, a
    missing point is not created."""
    rng = np.random.default_rng(5)
    vectors = _unit(rng, 3)
    store.upsert("items", _points(vectors[:2]))
    store.set_payload("items", {"sku-0": {"nb_ids": ["sku-1"]}})
    store.update_vectors("items", {"sku-0": vectors[2], "sku-9": vectors[2]})
    got = store.retrieve("items", ["sku-0", "sku-9"], with_vectors=True)
    assert set(got) == {"sku-0"}
    assert got["sku-0"].payload["nb_ids"] == ["sku-1"] and got["sku-0"].payload["n"] == 0
    vector = got["sku-0"].vector
    assert vector is not None and np.allclose(vector, vectors[2], atol=1e-6)


def test_scroll_where_yields_only_matching_points_with_their_fields(store: VectorStore) -> None:
    """A filtered scroll (how the behaviour consumer asks for the items written since it last
    looked): across pages, only the points matching, with only the fields asked for."""
    rng = np.random.default_rng(8)
    vectors = _unit(rng, 1_500)
    store.upsert("items", _points(vectors))
    # floor = n / 10: 1,300 points at or above 20, more than a page of the embedded engine's
    got = list(store.scroll("items", fields=("n",), where=Where(within=("floor", 20.0, None))))
    assert sorted(p.payload["n"] for p in got) == list(range(200, 1_500))
    assert {p.key for p in got} == {f"sku-{i}" for i in range(200, 1_500)}
    assert all(not {"floor", "tags"} & set(p.payload) for p in got)


def test_a_dropped_collection_is_gone_with_its_points(store: VectorStore) -> None:
    """Dropped, then made again (even of another size): empty; the others untouched; dropping
    one that does not exist is no error."""
    vectors = _unit(np.random.default_rng(3), 4)
    store.upsert("items", _points(vectors))
    store.ensure_collection("other", DIM)
    store.upsert("other", _points(vectors))
    store.drop_collection("items")
    store.drop_collection("never-made")
    store.ensure_collection("items", DIM + 1)
    assert store.count("items") == 0
    assert store.count("other") == 4
