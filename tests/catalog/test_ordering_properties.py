"""Ordering properties of the catalog processor, checked by hypothesis against a reference model.

Streams of catalogue events for a handful of items (creates, updates with changed or unchanged
text, deletes, versions in any order, exact replays, several events of one item in one batch)
are split into random batches and fed through the real :class:`CatalogProcessor` (receive ->
process -> confirm, as the consumer loop does) over a real :class:`EdgeStore`. The encoder is a
small deterministic fake (a text's SHA-256 seeds a 16-dimensional unit vector): this is a test of
ordering logic, not of embeddings, and the fake keeps hundreds of examples within seconds.

Reference model, per item: the event with the greatest stamp wins; deletion wins a tie, and
among upserts with equal stamps the later one in the log wins. An item's stamp is its
``(version, occurred_at)`` when its events carry versions (``plan.Stamp`` compares versions and
falls back to the time when they are equal) and its ``occurred_at`` when they do not. Each item's
events either all carry a version or none do: with a mix the README's rule ("version when both
have one, else occurred_at") is not a total order (v2@t1 > v1@t3 > none@t2 > v2@t1), so no
reference could say which event should win.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hash_encoder import HashEncoder
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from encoders.text import item_text
from schemas.catalog import Item
from stream.catalog.processor import CatalogProcessor
from stream.collections import DELETED_ITEMS, ITEM_LISTS, ITEMS
from stream.kafka.dlq import LocalMessage
from stream.loop import Output
from stream.settings import Settings
from stream.store.edge import EdgeStore

IDS = ("a", "b", "c", "d", "e")
K = 2
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SETTINGS = Settings(neighbours_k=K, repair_sweep_per_s=0)  # no sweep behind the redo
TITLES = ("cotton shirt", "wool jumper", "linen trousers")
"""Per item; the item id is part of the title so that no two items share a text."""


@dataclass(frozen=True)
class Event:
    item_id: str
    kind: str
    version: int | None
    minute: int
    title: str
    price: float | None
    serial: int
    """Makes event ids unique; an exact replay repeats the whole event, serial included."""
    in_stock: bool = True

    @property
    def is_delete(self) -> bool:
        return self.kind == "item.deleted"

    def stamp(self) -> tuple[int, ...]:
        return (self.minute,) if self.version is None else (self.version, self.minute)

    def item(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "title": self.title,
            "price": self.price,
            "in_stock": self.in_stock,
        }

    def to_bytes(self) -> bytes:
        body: dict[str, Any] = {
            "type": self.kind,
            "event_id": f"e-{self.serial}",
            "occurred_at": (T0 + timedelta(minutes=self.minute)).isoformat(),
        }
        if self.version is not None:
            body["version"] = self.version
        if self.is_delete:
            body["item_id"] = self.item_id
        else:
            body["item"] = self.item()
        return json.dumps(body).encode()


@st.composite
def event_streams(draw: st.DrawFn, stock: bool = False) -> tuple[list[Event], list[int]]:
    """Events for up to five items and the sizes of the batches they are split into."""
    ids = IDS[: draw(st.integers(2, len(IDS)))]
    versioned = {i: draw(st.booleans()) for i in ids}
    events: list[Event] = []
    for serial in range(draw(st.integers(1, 24))):
        if events and draw(st.integers(0, 7)) == 0:
            events.append(draw(st.sampled_from(events)))  # an exact replay
            continue
        item_id = draw(st.sampled_from(ids))
        events.append(
            Event(
                item_id=item_id,
                kind=draw(st.sampled_from(["item.created", "item.updated", "item.deleted"])),
                version=draw(st.integers(0, 4)) if versioned[item_id] else None,
                minute=draw(st.integers(0, 4)),
                title=f"{item_id} {draw(st.sampled_from(TITLES))}",
                price=draw(st.sampled_from([None, 5.0, 9.5])),
                serial=serial,
                in_stock=draw(st.booleans()) if stock else True,
            )
        )
    sizes = []
    left = len(events)
    while left:
        size = draw(st.integers(1, left))
        sizes.append(size)
        left -= size
    return events, sizes


def _batches(events: list[Event], sizes: list[int]) -> list[list[Event]]:
    out, offset = [], 0
    for size in sizes:
        out.append(events[offset : offset + size])
        offset += size
    return out


def reference(events: list[Event]) -> dict[str, Event]:
    """The winning upsert of each live item (deleted and never-created items are absent)."""
    live: dict[str, Event] = {}
    for item_id in {e.item_id for e in events}:
        mine = [e for e in events if e.item_id == item_id]
        best = max(e.stamp() for e in mine)
        top = [e for e in mine if e.stamp() == best]
        if not any(e.is_delete for e in top):
            live[item_id] = top[-1]
    return live


@pytest.fixture(scope="module")
def store() -> Iterator[EdgeStore]:
    # one store for the module (opening one takes about a second): emptied before each example
    with tempfile.TemporaryDirectory() as root:
        s = EdgeStore(root)
        try:
            yield s
        finally:
            s.close()


def _empty(store: EdgeStore) -> None:
    for collection in (ITEMS, DELETED_ITEMS, ITEM_LISTS):
        try:
            keys = [p.key for p in store.scroll(collection)]
        except KeyError:
            continue  # not created yet
        store.delete(collection, keys)


def _run(
    store: EdgeStore,
    events: list[Event],
    sizes: list[int],
    search: str = "auto",
    ahead: bool = False,
    first_offset: int = 0,
    lists: dict[str, Any] | None = None,
) -> list[Output]:
    """Feed the events through receive -> process -> confirm, batch by batch; ``ahead``: as
    the consumer loop does with a backlog, prepare each batch before the one before it is
    processed (its texts are then encoded against the store as it was before that batch)."""
    settings = SETTINGS.model_copy(update={"neighbour_search": search, **(lists or {})})
    processor = CatalogProcessor(settings, HashEncoder(), store)
    outputs: list[Output] = []
    offset = first_offset
    batches = []
    for batch in _batches(events, sizes):
        batches.append([processor.receive(_message(offset + i, e))[0] for i, e in enumerate(batch)])
        offset += len(batch)
    if ahead and batches:
        processor.prepare(batches[0])
    for number, entries in enumerate(batches):
        if ahead and number + 1 < len(batches):
            processor.prepare(batches[number + 1])
        result = processor.process(entries)
        dead = [o for o in result.outputs if o.topic != SETTINGS.topic_neighbours]
        assert not dead, f"valid events dead-lettered: {dead}"
        outputs.extend(result.outputs)
        processor.confirm(result)
    processor.ahead.close()
    return outputs


@st.composite
def crashing_streams(draw: st.DrawFn) -> tuple[list[Event], list[int], int, list[int]]:
    """A stream as :func:`event_streams` draws it, the batch at which the process dies (after
    its store writes, before its publish) and the sizes of the batches its successor redoes the
    rest of the log in (from that batch on: the redo may batch it differently)."""
    events, sizes = draw(event_streams())
    crash = draw(st.integers(0, len(sizes) - 1))
    left = len(events) - sum(sizes[:crash])
    redo = []
    while left:
        size = draw(st.integers(1, left))
        redo.append(size)
        left -= size
    return events, sizes, crash, redo


def _run_crashing(
    store: EdgeStore, stream: tuple[list[Event], list[int], int, list[int]], search: str
) -> list[Output]:
    """As :func:`_run`, but the process dies at the drawn batch: its store writes stay, its
    outputs are never delivered nor recorded; a new process (nothing kept in memory) goes on
    from the first offset not committed, that batch's."""
    events, sizes, crash, redo = stream
    done = sum(sizes[:crash])
    outputs = _run(store, events[:done], sizes[:crash], search)
    settings = SETTINGS.model_copy(update={"neighbour_search": search})
    dying = CatalogProcessor(settings, HashEncoder(), store)
    batch = events[done : done + sizes[crash]]
    dying.process([dying.receive(_message(done + i, e))[0] for i, e in enumerate(batch)])
    dying.ahead.close()  # the process is gone, and what it held in memory
    return outputs + _run(store, events[done:], redo, search, first_offset=done)


def _message(offset: int, e: Event) -> LocalMessage:
    return LocalMessage(offset, e.item_id.encode(), e.to_bytes())


def _brute_force(
    vectors: dict[str, npt.NDArray[np.float32]],
    key: str,
    nameable: set[str] | None = None,
    least: float = -1.0,
) -> list[tuple[str, float]]:
    """``key``'s top K among ``nameable`` items (all: None), those scoring below ``least``
    then left out."""
    scores = [
        (other, float(vectors[key] @ v))
        for other, v in vectors.items()
        if other != key and (nameable is None or other in nameable)
    ]
    return [s for s in sorted(scores, key=lambda s: -s[1])[:K] if s[1] >= least]


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(stream=event_streams(), ahead=st.booleans())
@pytest.mark.parametrize("search", ["memory", "store"])
def test_final_state_and_lists_follow_the_newest_event(
    store: EdgeStore, search: str, stream: tuple[list[Event], list[int]], ahead: bool
) -> None:
    """Whatever the arrival order, batching, replays and duplicates: the store holds exactly the
    items whose newest event is an upsert, each with that event's version, title, price and
    vector; deleted items are absent; the last neighbour list published for each live item is
    the brute-force top-k over the final stored vectors (and names the item's final version);
    the last record for an absent item, if any, is a tombstone. Both neighbour finders, with
    and without encoding ahead."""
    events, sizes = stream
    _empty(store)
    _assert_follows_newest(store, events, _run(store, events, sizes, search, ahead))


def _created_then_repriced() -> tuple[list[Event], list[int], int, list[int]]:
    """The commonest catalogue pattern: four items listed; then ``e`` created, the process
    dying before that batch's publish, and a price-only update of ``e`` arriving before the
    redo, which holds both."""
    events = [
        Event(item_id, "item.created", 1, 0, f"{item_id} {title}", 5.0, serial)
        for serial, (item_id, title) in enumerate(zip("abcd", TITLES * 2, strict=False))
    ]
    events.append(Event("e", "item.created", 1, 1, "e cotton shirt", 5.0, 4))
    events.append(Event("e", "item.updated", 2, 2, "e cotton shirt", 9.5, 5))
    return events, [4, 1, 1], 1, [2]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=crashing_streams())
@example(stream=_created_then_repriced())
@pytest.mark.parametrize("search", ["memory", "store"])
def test_a_redo_after_a_crash_repairs_every_list(
    store: EdgeStore, search: str, stream: tuple[list[Event], list[int], int, list[int]]
) -> None:
    """The process dies after a batch's store writes and before its publish; its successor
    redoes the log from that batch, batched in any way (the redo may hold newer events of the
    items written, such as a price-only update): the same final state and lists as above."""
    _empty(store)
    _assert_follows_newest(store, stream[0], _run_crashing(store, stream, search))


def _out_of_stock_and_back(back: bool) -> tuple[list[Event], list[int]]:
    """Three items listed; ``b`` goes out of stock (a stock-only update), then maybe back."""
    events = [
        Event(i, "item.created", 1, 0, f"{i} cotton shirt", 5.0, n) for n, i in enumerate("abc")
    ]
    events.append(Event("b", "item.updated", 2, 1, "b cotton shirt", 5.0, 3, in_stock=False))
    if back:
        events.append(Event("b", "item.updated", 3, 2, "b cotton shirt", 5.0, 4))
    return events, [3] + [1] * (len(events) - 3)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=event_streams(stock=True), least=st.sampled_from([-1.0, 0.0, 0.3]))
@example(stream=_out_of_stock_and_back(False), least=-1.0)
@example(stream=_out_of_stock_and_back(True), least=-1.0)
@pytest.mark.parametrize("search", ["memory", "store"])
def test_in_stock_only_lists_with_a_minimum_score(
    store: EdgeStore, search: str, stream: tuple[list[Event], list[int]], least: float
) -> None:
    """RECSTREAM_LISTS_IN_STOCK_ONLY and RECSTREAM_LISTS_MIN_SCORE: whatever the order of stock
    changes, the last list of each live item (in stock or not) is the brute-force top k of the
    live items in stock, without those scoring below the minimum."""
    events, sizes = stream
    _empty(store)
    lists = {"lists_in_stock_only": True, "lists_min_score": least}
    outputs = _run(store, events, sizes, search, lists=lists)
    _assert_follows_newest(store, events, outputs, stock=True, least=least)


def _assert_follows_newest(
    store: EdgeStore,
    events: list[Event],
    outputs: list[Output],
    stock: bool = False,
    least: float = -1.0,
) -> None:
    want = reference(events)
    points = {p.key: p for p in store.scroll(ITEMS, with_vectors=True)}
    assert set(points) == set(want), f"live items {sorted(points)}, expected {sorted(want)}"
    encoder = HashEncoder()
    for item_id, event in want.items():
        payload = points[item_id].payload
        got = (payload.get("version"), payload.get("title"), payload.get("price"))
        assert got == (event.version, event.title, event.price), item_id
        vector = points[item_id].vector
        assert vector is not None
        expected = encoder.vector(item_text(Item.model_validate(event.item())))
        assert np.allclose(vector, expected, atol=1e-6), f"{item_id}: vector of an older text"

    last: dict[str, bytes | None] = {}
    for out in outputs:
        assert out.key is not None
        last[out.key.decode()] = out.value
    vectors = {k: p.vector for k, p in points.items() if p.vector is not None}
    for item_id in {e.item_id for e in events}:
        value = last.get(item_id)
        if item_id not in want:
            assert value is None, f"{item_id} is gone, but its last record is a list"
            continue
        assert value is not None, f"{item_id} is live, but its last record is a tombstone/none"
        message = json.loads(value)
        assert message["item_version"] == want[item_id].version, item_id
        got_list = [(n["item_id"], n["score"]) for n in message["neighbours"]]
        nameable = {k for k, e in want.items() if e.in_stock} if stock else None
        expected_list = _brute_force(vectors, item_id, nameable, least)
        assert [i for i, _ in got_list] == [i for i, _ in expected_list], item_id
        for (_, got_score), (_, want_score) in zip(got_list, expected_list, strict=True):
            assert got_score == pytest.approx(want_score, abs=1e-5), item_id


def _live_after(store: EdgeStore, events: list[Event], sizes: list[int]) -> set[str]:
    _empty(store)
    _run(store, events, sizes)
    return {p.key for p in store.scroll(ITEMS)}


def _event(kind: str, version: int | None, serial: int) -> Event:
    return Event("a", kind, version, 0, "a cotton shirt", None, serial)


def test_deletion_wins_a_tie_within_one_batch(store: EdgeStore) -> None:
    """A deletion and an upsert with the same stamp: the item stays deleted whether the two
    arrive in one batch or in two (here: created, then deleted and re-sent in one batch)."""
    create = _event("item.created", None, 0)
    delete = _event("item.deleted", None, 1)
    assert _live_after(store, [create, delete, create], [1, 1, 1]) == set()
    assert _live_after(store, [create, delete, create], [1, 2]) == set()


def test_an_older_deletion_does_not_weaken_a_newer_one(store: EdgeStore) -> None:
    """Deleted at version 3, then a late deletion at version 1, then an upsert at version 2:
    the upsert is older than the item's newest deletion, so the item stays deleted."""
    events = [
        _event("item.deleted", 3, 0),
        _event("item.deleted", 1, 1),
        _event("item.created", 2, 2),
    ]
    assert _live_after(store, events, [3]) == set()  # one batch: right already
    assert _live_after(store, events, [1, 1, 1]) == set()
