"""Lists recorded by the memory finder are lost (the journal cleared, as after it was found
damaged): the catalog processor must neither hold every changed item against every list
(batch x catalogue entries, an out-of-memory restart at scale) nor leave any list wrong once the
items without a record have been repaired, a bounded number per batch.

Real :class:`CatalogProcessor` (receive -> process -> confirm) over a real :class:`EdgeStore`;
the encoder is a small deterministic fake (a text's SHA-256 seeds a 16-dimensional unit vector).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hash_encoder import HashEncoder
from kit import assert_lists_match_brute_force, feed, published, upsert_event

from stream.catalog.neighbours import Entries, MemoryFinder
from stream.catalog.processor import CatalogProcessor
from stream.collections import ITEM_LISTS
from stream.settings import Settings
from stream.store.edge import EdgeStore

K = 5
CATALOGUE = 300
BATCH = 40
REPAIR = 64
SETTINGS = Settings(neighbours_k=K, neighbour_search="memory", repair_sweep_per_s=0)


class Counted:
    """Wraps a finder's ``entered_by``: what each call returned, by size."""

    def __init__(self, finder: MemoryFinder) -> None:
        self.inner = finder.entered_by
        self.calls: list[tuple[int, int]] = []
        """(entries, lists named with no entry) per call"""

    def __call__(self, changed: Any) -> Entries:
        entries = self.inner(changed)
        total = sum(map(len, entries.values()))
        self.calls.append((total, sum(1 for e in entries.values() if not e)))
        return entries


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EdgeStore]:
    s = EdgeStore(str(tmp_path))
    yield s
    s.close()


def feed_lists(
    processor: CatalogProcessor, events: list[dict[str, Any]], lists: dict[str, Any]
) -> None:
    """One batch; ``lists`` gets the lists published (nothing else is)."""
    outputs = feed(processor, events)
    assert all(o.topic == SETTINGS.topic_neighbours for o in outputs), outputs
    published(outputs, lists)


def item(i: int, title: str = "shirt") -> dict[str, Any]:
    return {"item_id": f"sku-{i:04d}", "title": f"{title} {i}", "price": 9.5}


def test_lost_records_cost_a_bounded_number_of_entries_and_every_list_is_repaired(
    store: EdgeStore,
) -> None:
    """300 items listed, then every record lost. Batches of 40 changes (new items, new texts)
    follow: no changed item is reported as entering a list with no record (before the fix: 40 x
    300 entries in the first batch), at most 64 lists without a record are computed afresh per
    batch, and once all are, every published list is the brute-force top k of the store."""
    processor = CatalogProcessor(SETTINGS, HashEncoder(), store)
    lists: dict[str, Any] = {}
    feed_lists(
        processor, [upsert_event(item(i), 1, "item.created") for i in range(CATALOGUE)], lists
    )
    store.delete(ITEM_LISTS, [p.key for p in store.scroll(ITEM_LISTS)])  # the records are lost
    finder = processor.finder
    finder.reset()  # and with them the copy in memory
    assert isinstance(finder, MemoryFinder)
    finder.repair = REPAIR
    counted = Counted(finder)
    finder.entered_by = counted  # type: ignore[method-assign]

    fresh = CATALOGUE
    for batch in range(-(-CATALOGUE // REPAIR)):
        events = [upsert_event(item(fresh + j), 1, "item.created") for j in range(BATCH // 2)]
        fresh += BATCH // 2
        start = batch * (BATCH // 2)
        events += [upsert_event(item(i, "jumper"), 2) for i in range(start, start + BATCH // 2)]
        feed_lists(processor, events, lists)

    for entries, repaired in counted.calls:
        # an item enters about k recorded lists; never every list without a record
        assert entries <= BATCH * K * 4, counted.calls
        assert repaired <= REPAIR, counted.calls
    assert counted.calls[0][0] == 0  # no list had a record: nothing to merge into
    records = finder.records(f"sku-{i:04d}" for i in range(fresh))
    assert all(r.state is not None for r in records.values())  # every list repaired
    assert_lists_match_brute_force(lists, store, K)
