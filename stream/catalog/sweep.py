"""The repair sweep: every list is checked again against a fresh top k, a few a batch.

Each catalogue batch also names the next items of the catalogue, in the store's order and round
and round, for their lists to be computed afresh: ``per_s`` items for each second since the
batch before (at most :data:`MAX_PER_BATCH` a batch; the rest carried over). A list that differs
from its fresh top k is published (with a lists consumer: handed to it as ``recompute`` work);
one that agrees costs a search and nothing else. Whatever left a list wrong (a fault no test
tried, a write made behind the consumer's back, a bug), it is right again within a sweep: the
catalogue's size over ``per_s`` seconds of consumer activity. Each catalog instance sweeps the
whole catalogue at that rate.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

import structlog

from stream.store import VectorStore

log = structlog.get_logger(__name__)

MAX_PER_BATCH = 1_024
"""Items one batch checks at most, however long since the batch before."""


class RepairSweep:
    """The keys each batch checks again (:meth:`due`); ``per_s`` 0 checks none."""

    def __init__(
        self,
        store: VectorStore,
        collection: str,
        per_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.collection = collection
        self.per_s = per_s
        self.clock = clock
        self._since = clock()
        self._owed = 0.0
        self._keys: Iterator[str] | None = None
        self.rounds = 0
        """Sweeps of the whole catalogue begun (the first included)."""

    def due(self) -> list[str]:
        """The next keys to check: as many as the time since the last call pays for."""
        now = self.clock()
        owed = self._owed + max(0.0, now - self._since) * self.per_s
        self._since = now
        n = min(int(owed), MAX_PER_BATCH)
        self._owed = min(owed - n, float(MAX_PER_BATCH))
        if n == 0:
            return []
        keys = list(itertools.islice(self._pages(), n))
        if len(keys) < n:  # the end of the catalogue: start again from its beginning, once
            self._keys = None
            keys.extend(itertools.islice(self._pages(), n - len(keys)))
        return list(dict.fromkeys(keys))

    def _pages(self) -> Iterator[str]:
        if self._keys is None:
            self.rounds += 1
            self._keys = (p.key for p in self.store.scroll(self.collection, fields=("item_id",)))
        return self._keys

    def reset(self) -> None:
        """Read the catalogue afresh at the next call (a store error may have left the pages
        half read); where the sweep had got to is lost, the time owed is not."""
        self._keys = None
