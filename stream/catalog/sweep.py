"""The repair sweep: every list is checked again against a fresh top k, a few a batch.

Each catalogue batch also names the next items of the catalogue, in the store's order and round
and round, for their lists to be computed afresh: ``per_s`` items for each second since the
batch before (a pause counts as :data:`MAX_PAUSE_S` at most, so the first batch after an idle
spell does not pay for it; at most :data:`MAX_PER_BATCH` a batch, the rest carried over). A list
that differs from its fresh top k is published (with a lists consumer: handed to it as
``recompute`` work); one that agrees costs a search and nothing else. Whatever left a list other
than the top k of what the finder sees (a fault no test tried, a bug; with store search, also a
write made behind the consumers' back), it is right again within a sweep: the catalogue's size
over ``per_s`` seconds of consumer activity. Each catalog instance sweeps the whole catalogue
at that rate (with N instances, N times the searches).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

import structlog

from stream.store import VectorStore

log = structlog.get_logger(__name__)

MAX_PER_BATCH = 256
"""Items one batch checks at most."""
MAX_PAUSE_S = 5.0
"""The most seconds the time since the batch before counts for."""


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
        self._since: float | None = None  # the first batch starts the clock
        self._owed = 0.0
        self._keys: Iterator[str] | None = None
        self.rounds = 0
        """Sweeps of the whole catalogue begun (the first included)."""

    def due(self) -> list[str]:
        """The next keys to check: as many as the time since the last call pays for. A store
        error while reading them costs no time owed; the next call starts the catalogue again."""
        now = self.clock()
        since, self._since = self._since, now
        if since is None:
            return []
        owed = self._owed + min(max(0.0, now - since), MAX_PAUSE_S) * self.per_s
        n = min(int(owed), MAX_PER_BATCH)
        if n == 0:
            self._owed = owed
            return []
        try:
            keys = list(itertools.islice(self._pages(), n))
            if len(keys) < n:  # the end of the catalogue: start again from its beginning, once
                self._keys = None
                keys.extend(itertools.islice(self._pages(), n - len(keys)))
        except Exception:
            self._keys = None
            self._owed = owed
            raise
        self._owed = min(owed - n, float(MAX_PER_BATCH))
        return list(dict.fromkeys(keys))

    def _pages(self) -> Iterator[str]:
        if self._keys is None:
            self.rounds += 1
            self._keys = (p.key for p in self.store.scroll(self.collection, fields=("item_id",)))
        return self._keys
