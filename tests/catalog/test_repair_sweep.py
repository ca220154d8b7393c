"""The repair sweep: a list left wrong where no batch looks is set right within a sweep.

Real :class:`CatalogProcessor` (receive -> process -> confirm) over a real :class:`EdgeStore`;
the encoder is a small deterministic fake (a text's SHA-256 seeds a 16-dimensional unit vector).
A list goes wrong behind the consumer's back (recorded as published, never the top k: what a
fault no test tried would leave); the next batches change nothing near it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hash_encoder import HashEncoder
from kit import assert_lists_match_brute_force, feed, published, upsert_event

from stream.catalog.lists import NeighbourState
from stream.catalog.processor import CatalogProcessor
from stream.catalog.sweep import MAX_PAUSE_S, MAX_PER_BATCH, RepairSweep
from stream.catalog.work import parse_list_work
from stream.settings import Settings
from stream.store import StoredPoint
from stream.store.edge import EdgeStore

K = 5
CATALOGUE = 40
VICTIM = "sku-0007"
EVERYTHING_AT_ONCE = 1e9
"""Items per second: any batch checks the whole (small) catalogue."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EdgeStore]:
    s = EdgeStore(str(tmp_path))
    yield s
    s.close()


def item(i: int) -> dict[str, Any]:
    return {"item_id": f"sku-{i:04d}", "title": f"shirt {i}", "price": 9.5}


def go_wrong(processor: CatalogProcessor, lists: dict[str, Any]) -> None:
    """The victim's list is recorded (and was published) with the items farthest from it."""
    wrong = NeighbourState.from_pairs((item(30 + n)["item_id"], -0.9 - n / 100) for n in range(K))
    processor.finder.record({VICTIM: wrong})
    lists[VICTIM] = list(zip(wrong.ids, wrong.scores, strict=True))


@pytest.mark.parametrize("search", ["memory", "store"])
def test_a_wrong_list_no_batch_touches_is_published_right_by_the_sweep(
    store: EdgeStore, search: str
) -> None:
    """The next batch only reprices another item: the sweep checks every list, finds the
    victim's differs from its top k and publishes it; every other list agreed, so nothing else
    is published besides the repriced item's own."""
    settings = Settings(
        neighbours_k=K,
        neighbour_search=search,
        list_stage="inline",
        repair_sweep_per_s=EVERYTHING_AT_ONCE,
    )
    processor = CatalogProcessor(settings, HashEncoder(), store)
    lists: dict[str, Any] = {}
    created = [upsert_event(item(i), 1, "item.created") for i in range(CATALOGUE)]
    published(feed(processor, created), lists)
    go_wrong(processor, lists)

    outputs = feed(processor, [upsert_event({**item(20), "price": 7.0}, 2)])

    assert sorted(o.key.decode() for o in outputs if o.key) == sorted([VICTIM, "sku-0020"])
    published(outputs, lists)
    assert_lists_match_brute_force(lists, store, K)


def test_without_the_sweep_the_wrong_list_stays(store: EdgeStore) -> None:
    """``repair_sweep_per_s`` 0: nothing looks at the victim's list again."""
    settings = Settings(neighbours_k=K, neighbour_search="memory", repair_sweep_per_s=0)
    processor = CatalogProcessor(settings, HashEncoder(), store)
    feed(processor, [upsert_event(item(i), 1, "item.created") for i in range(CATALOGUE)])
    go_wrong(processor, {})
    outputs = feed(processor, [upsert_event({**item(20), "price": 7.0}, 2)])
    assert [o.key for o in outputs] == [b"sku-0020"]


def test_with_a_lists_consumer_the_sweep_hands_over_only_the_lists_that_differ(
    store: EdgeStore,
) -> None:
    """The catalog consumer checks the swept lists itself and sends ``recompute`` work for the
    one that is wrong, not for the forty that agree (each is a search for the lists consumer)."""
    settings = Settings(
        neighbours_k=K,
        neighbour_search="store",
        list_stage="topic",
        repair_sweep_per_s=EVERYTHING_AT_ONCE,
    )
    processor = CatalogProcessor(settings, HashEncoder(), store)
    feed(processor, [upsert_event(item(i), 1, "item.created") for i in range(CATALOGUE)])
    # what the lists consumer (not running here) records: every list right, then one wrong
    processor.finder.record(processor.finder.top_k(item(i)["item_id"] for i in range(CATALOGUE)))
    go_wrong(processor, {})
    outputs = feed(processor, [upsert_event({**item(20), "price": 7.0}, 2)])
    work = [parse_list_work(o.key, o.value) for o in outputs]
    assert [w.owner for w in work if w.recompute] == [VICTIM]
    assert [w.owner for w in work if w.own] == ["sku-0020"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_sweep_checks_as_many_items_as_the_time_since_the_last_batch_pays_for(
    store: EdgeStore,
) -> None:
    """8 items a second over a catalogue of 7: the first batch starts the clock, fractions are
    carried over, round and round in the store's order; a long pause counts as
    :data:`MAX_PAUSE_S`, and no batch takes more than :data:`MAX_PER_BATCH`."""
    store.ensure_collection("items", 4)
    unit = np.ones(4, dtype=np.float32) / 2
    store.upsert("items", [StoredPoint(f"i{n}", {}, unit) for n in range(7)])
    order = [p.key for p in store.scroll("items")]
    clock = Clock()
    sweep = RepairSweep(store, "items", 8.0, clock)  # times below are exact binary fractions

    clock.now += 3600  # before the first batch: nothing owed
    assert sweep.due() == []
    clock.now += 0.3125
    assert sweep.due() == order[:2]  # 2.5 owed
    clock.now += 0.3125
    assert sweep.due() == order[2:5]  # 0.5 + 2.5
    clock.now += 0.5
    assert sweep.due() == order[5:] + order[:2]  # round the end
    assert sweep.rounds == 2
    clock.now += 0.25
    assert sweep.due() == order[2:4]
    clock.now += 3600  # counts as 5 s: 40 owed, the catalogue once
    assert sweep.due() == order[4:] + order[:4]
    assert sweep._owed == 0

    busy = RepairSweep(store, "items", 1_000.0, clock)
    busy.due()
    clock.now += MAX_PAUSE_S
    busy.due()
    assert busy._owed == MAX_PER_BATCH  # 5,000 owed, 256 taken, the carry capped


class Failing:
    """The store, whose scroll raises once, mid-page."""

    def __init__(self, inner: EdgeStore) -> None:
        self.inner = inner
        self.fail = True

    def scroll(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for n, point in enumerate(self.inner.scroll(*args, **kwargs)):
            if n == 1 and self.fail:
                self.fail = False
                raise OSError("store gone")
            yield point


def test_a_store_error_while_sweeping_costs_no_time_owed(store: EdgeStore) -> None:
    store.ensure_collection("items", 4)
    unit = np.ones(4, dtype=np.float32) / 2
    store.upsert("items", [StoredPoint(f"i{n}", {}, unit) for n in range(7)])
    order = [p.key for p in store.scroll("items")]
    clock = Clock()
    sweep = RepairSweep(Failing(store), "items", 8.0, clock)  # type: ignore[arg-type]
    sweep.due()
    clock.now += 0.375
    with pytest.raises(OSError):
        sweep.due()
    assert sweep.due() == order[:3]  # the 3 owed, from the start again
