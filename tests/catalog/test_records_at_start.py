"""``recstream run catalog`` switched from memory to store search moves the records at start-up.

A store left by a memory-search consumer keeps its list records in a journal; store search reads
them from the item payloads. The start-up of ``run_consumers`` (what ``recstream run`` runs), on
the embedded broker and a real embedded store, must move them before any batch reads one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from encoders.hybrid import vector_dimension
from stream.catalog.lists import NeighbourState
from stream.catalog.neighbours import MemoryFinder
from stream.collections import ITEM_LISTS, ITEMS, ensure_collections
from stream.runner import run_consumers
from stream.settings import Settings
from stream.store import StoredPoint
from stream.store.edge import EdgeStore

DIM = vector_dimension(Settings())  # the default vectors': the start-up checks the store


def test_run_with_store_search_adopts_the_records_a_memory_consumer_left(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(neighbour_search="store", list_stage="inline")
    store = EdgeStore(settings.qdrant_path)
    try:
        ensure_collections(store, DIM)
        rng = np.random.default_rng(0)
        store.upsert(
            ITEMS,
            [StoredPoint(f"s{i}", {"item_id": f"s{i}"}, rng.normal(size=DIM)) for i in range(3)],
        )
        listed = NeighbourState.from_pairs([("s1", 0.5), ("s2", 0.4)])
        MemoryFinder(store, ITEMS, settings.neighbours_k, DIM).record({"s0": listed})
    finally:
        store.close()

    stop = threading.Event()
    stop.set()  # start, then stop at once: only the start-up runs
    assert run_consumers(settings, "catalog", stop) == 0

    store = EdgeStore(settings.qdrant_path)
    try:
        ensure_collections(store, DIM)
        assert list(store.scroll(ITEM_LISTS)) == []
        payload = store.retrieve(ITEMS, ["s0"])["s0"].payload
        assert payload["nb_ids"] == ["s1", "s2"]
    finally:
        store.close()
