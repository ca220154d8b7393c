"""The behaviour consumer's copy of the items against a real embedded store: what the catalog
consumer writes (stamped ``written_at``) is in the copy at the next catch-up, whatever fails or
is reloaded in between."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from faults import FlakyStore

from stream.collections import ITEMS, WRITTEN_AT, ensure_collections
from stream.ranking import candidates
from stream.ranking.candidates import ItemIndex
from stream.ranking.recommender import Recommender
from stream.settings import Settings
from stream.store import StoredPoint, StoreUnavailable
from stream.store.edge import EdgeStore

DIM = 8


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EdgeStore]:
    s = EdgeStore(tmp_path / "q")
    ensure_collections(s, DIM)
    yield s
    s.close()


def _vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def _item(key: str, seed: int, at: float, **fields: object) -> StoredPoint:
    payload = {"item_id": key, "price": 10.0, "in_stock": True, "content_hash": f"h{seed}"}
    return StoredPoint(key, {**payload, "model": "m", WRITTEN_AT: at, **fields}, _vector(seed))


class _FailingRetrieve(FlakyStore):
    """Fails the next vector read only (the one a re-encoded item needs)."""

    fail_next = False

    def retrieve(self, collection, keys, with_vectors=False, fields=None):  # type: ignore[no-untyped-def]
        if self.fail_next and with_vectors:
            self.fail_next = False
            raise StoreUnavailable("injected: store down")
        return self.inner.retrieve(collection, keys, with_vectors, fields)


def test_a_catch_up_that_failed_does_not_skip_what_it_read(store: EdgeStore) -> None:
    """A re-encoded item and, 10 s later by its stamp, a price change; the catch-up that reads
    them fails on the new vector (the batch is retried): the retried catch-up still takes in the
    new vector and fields, not only the later change."""
    base = time.time()
    store.upsert(ITEMS, [_item("a", 1, base), _item("b", 2, base)])
    flaky = _FailingRetrieve(store)
    index = ItemIndex(flaky, k=2, refresh_s=3_600.0)  # type: ignore[arg-type]
    try:
        store.upsert(ITEMS, [_item("a", 3, base + 1, in_stock=False)])
        store.set_payload(ITEMS, {"b": {"price": 20.0, WRITTEN_AT: base + 11}})
        flaky.fail_next = True
        with pytest.raises(StoreUnavailable):
            index.catch_up()
        index.catch_up()
        got = index.points(["a", "b"])
    finally:
        index.close()
    assert got["a"].payload["in_stock"] is False
    np.testing.assert_allclose(got["a"].vector, _vector(3), atol=1e-6)
    assert got["b"].payload["price"] == 20.0


def test_a_write_landing_while_the_copy_is_reread_is_not_lost(
    store: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole copy is read again on the worker; meanwhile one item goes out of stock after
    the read passed it, and a later write (stamped 9 s after) is read on a later page. Once the
    new copy is swapped in, the item is out of stock in it: the swap does not lose the write,
    nor does the change feed skip it."""
    base = time.time()
    store.upsert(ITEMS, [_item("a", 1, base - 60), _item("z", 2, base - 60)])
    index = ItemIndex(store, k=2, refresh_s=0.05)
    real: Callable[..., candidates._Copy] = candidates._load
    read = threading.Event()

    def racing(s: EdgeStore, k: int, lexical: bool, rough: bool) -> candidates._Copy:
        copy = real(s, k, lexical, rough)  # the pages are read ...
        s.set_payload(ITEMS, {"a": {"in_stock": False, WRITTEN_AT: base + 1}})
        s.set_payload(ITEMS, {"z": {"price": 30.0, WRITTEN_AT: base + 10}})
        copy.fields["z"] = {**copy.fields["z"], "price": 30.0}  # ... z's after its write
        copy.seen = base + 10
        index._stop.set()  # the worker reads the whole copy no more after this one
        read.set()
        return copy

    try:
        index.catch_up()
        monkeypatch.setattr(candidates, "_load", racing)
        assert read.wait(10)
        time.sleep(0.2)  # the worker hands the copy over
        index.catch_up()
        got = index.points(["a", "z"])
    finally:
        index.close()
    assert got["z"].payload["price"] == 30.0
    assert got["a"].payload["in_stock"] is False


class _CountedChanges(FlakyStore):
    """Counts the points the change feed (a filtered scroll) returns."""

    changes_read = 0

    def scroll(self, collection, with_vectors=False, fields=None, where=None):  # type: ignore[no-untyped-def]
        points = list(self.inner.scroll(collection, with_vectors, fields, where))
        if where is not None:
            self.changes_read += len(points)
        return iter(points)


def test_a_quiet_catalogue_is_not_read_again_at_every_batch(
    store: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bulk load (50 items stamped within a second), then no writes: once every write stamped
    before a catch-up's start has had the margin to land, the feed asks only for later stamps
    and a batch reads nothing again; a write that lands afterwards is still taken in."""
    now = time.time()
    clock = [now]
    monkeypatch.setattr(candidates, "_now", lambda: clock[0])
    store.upsert(ITEMS, [_item(f"i{n}", n, now - n / 50) for n in range(50)])
    counted = _CountedChanges(store)
    index = ItemIndex(counted, k=2, refresh_s=3_600.0)  # type: ignore[arg-type]
    try:
        index.catch_up()  # within the margin of the load: all 50 asked again
        clock[0] += 2 * candidates.CHANGES_MARGIN_S + 1
        index.catch_up()  # began after every write before it could land
        counted.changes_read = 0
        index.catch_up()
        index.catch_up()
        assert counted.changes_read == 0
        store.upsert(ITEMS, [_item("late", 99, clock[0] - 1)])
        index.catch_up()
        assert counted.changes_read == 1
        assert set(index.points(["late"])) == {"late"}
    finally:
        index.close()


def test_the_copy_holds_the_model_part_of_hybrid_vectors_for_every_item(store: EdgeStore) -> None:
    """Hybrid vectors (the last 4 of 8 floats lexical, as the model name records): the copy holds
    the first 4, normalised, for every item, one read without a model name too (one cut for the
    whole collection: mixed lengths would break the copy); with ``lexical`` the whole vectors."""
    base = time.time()
    hybrid = _item("a", 1, base, model="m+chargrams4@0.5")
    unnamed = _item("b", 2, base)
    del unnamed.payload["model"]
    store.upsert(ITEMS, [hybrid, unnamed])
    for lexical, width in ((False, 4), (True, DIM)):
        index = ItemIndex(store, k=2, refresh_s=3_600.0, lexical=lexical)
        try:
            store.upsert(ITEMS, [_item("c", 3, base + 1, model="m+chargrams4@0.5")])
            index.catch_up()  # "c" through the change feed
            got = index.points(["a", "b", "c"])
        finally:
            index.close()
            store.delete(ITEMS, ["c"])
        for key, seed in (("a", 1), ("b", 2), ("c", 3)):
            want = _vector(seed)[:width]
            np.testing.assert_allclose(got[key].vector, want / np.linalg.norm(want), atol=1e-6)


def test_a_writer_whose_clock_is_behind_this_readers_is_still_followed(
    store: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalog writer's clock an hour behind the behaviour consumer's: after a quiet spell,
    a write it stamps (an hour in this reader's past) is still taken in at the next batch. The
    feed compares stamps only with stamps, and waits by this reader's own clock."""
    behind = time.time() - 3_600.0
    clock = [0.0]
    monkeypatch.setattr(candidates, "_now", lambda: clock[0])
    store.upsert(ITEMS, [_item("a", 1, behind)])
    index = ItemIndex(store, k=2, refresh_s=3_600.0)
    try:
        for _ in range(3):  # a quiet spell of 30 s by this reader's clock
            index.catch_up()
            clock[0] += 15.0
        store.upsert(ITEMS, [_item("a", 1, behind + 40.0, price=7.0)])
        index.catch_up()
        assert index.points(["a"])["a"].payload["price"] == 7.0
    finally:
        index.close()


def test_a_copy_started_empty_cuts_by_the_first_model_name_it_meets(store: EdgeStore) -> None:
    """The copy read nothing at start; two items then read outside the change feed, the first
    without a model name: both are cut to the model part the second one names."""
    index = ItemIndex(store, k=2, refresh_s=3_600.0)
    try:
        unnamed = _item("b", 2, time.time())
        del unnamed.payload["model"]
        store.upsert(ITEMS, [unnamed, _item("a", 1, time.time(), model="m+chargrams4@0.5")])
        got = index.points(["b", "a"])
    finally:
        index.close()
    for key, seed in (("a", 1), ("b", 2)):
        want = _vector(seed)[:4]
        np.testing.assert_allclose(got[key].vector, want / np.linalg.norm(want), atol=1e-6)


@pytest.mark.parametrize(("precision", "rough"), [("float32", False), ("bfloat16", True)])
def test_the_recommenders_copy_searches_profiles_as_the_precision_setting_says(
    store: EdgeStore, precision: str, rough: bool
) -> None:
    """``RECSTREAM_RANK_PRECISION`` reaches the index the profiles are searched in (its rough
    search: tests/catalog/test_rough.py)."""
    store.upsert(ITEMS, [_item("a", 1, time.time())])
    recommender = Recommender(Settings(rank_precision=precision), store)  # type: ignore[arg-type]
    try:
        index = recommender._items()
        assert index.rough is rough
        assert index._copy.index is not None and index._copy.index._rough_top is rough
        assert index._copy.index._ids.nbytes == 0  # the copy records no lists
    finally:
        recommender.close()
