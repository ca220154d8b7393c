"""Where shoppers' semantic candidates come from: an in-memory copy of the items' vectors.

A batch's profiles are searched together with matrix products against the copy (exact, pruned
by clusters from 20,000 items: :class:`stream.catalog.index.MemoryIndex`), where the store would
scan the whole collection once per shopper. The behaviour consumers do not write items, so the
copy is read again from the store every ``refresh_s`` on a worker thread and swapped in whole:
a new item becomes a semantic *candidate* up to that long after it was stored. Scores never lag:
every candidate's vector, price and stock are read from the store when its list is made, and an
item deleted meanwhile drops out there.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import numpy as np
import structlog

from stream.catalog.index import MemoryIndex
from stream.collections import ITEMS
from stream.store import StoreError, VectorStore
from stream.store.base import Vector

log = structlog.get_logger(__name__)


def load(store: VectorStore, dim: int, k: int) -> MemoryIndex:
    """Every stored item's vector in a new index whose searches return ``k`` rows."""
    index = MemoryIndex(dim, k)
    batch: dict[str, Vector] = {}
    for point in store.scroll(ITEMS, with_vectors=True, fields=()):
        if point.vector is not None:
            batch[point.key] = point.vector
        if len(batch) >= 10_000:
            index.put(batch)
            batch = {}
    index.put(batch)
    return index


class ItemIndex:
    """The items' vectors, refreshed from the store every ``refresh_s`` on a worker thread."""

    def __init__(self, store: VectorStore, dim: int, k: int, refresh_s: float) -> None:
        self.store = store
        self.dim = dim
        self.k = k
        self.refresh_s = refresh_s
        self.index = load(store, dim, k)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh, name="item-index", daemon=True)
        self._thread.start()

    def _refresh(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                self.index = load(self.store, self.dim, self.k)
            except StoreError as exc:  # keep the copy we have; the next round tries again
                log.warning("item_index.refresh_failed", error=str(exc)[:300])

    def nearest(
        self, profiles: Mapping[str, Vector], exclude: Mapping[str, set[str]], n: int
    ) -> dict[str, list[str]]:
        """Each profile's ``n`` nearest items, best first, leaving out its ``exclude`` (the
        search reads ``k`` rows: fewer come back when more than ``k - n`` are excluded)."""
        index = self.index  # one copy for the whole batch, whatever a refresh swaps in
        users = list(profiles)
        if not users or not len(index):
            return {u: [] for u in users}
        queries = np.stack([np.asarray(profiles[u], dtype=np.float32) for u in users])
        found = index.search(queries, np.full(len(users), -1, dtype=np.intp), None)
        out = {}
        for q, user in enumerate(users):
            keys = (index.keys[int(r)] for r in found.top_rows[q])
            skip = exclude.get(user, set())
            out[user] = [k for k in keys if k not in skip][:n]
        return out

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
