"""Where shoppers' semantic candidates and items' vectors come from: an in-memory copy of them.

A batch's profiles are searched together with matrix products against the copy (exact, pruned
by clusters from 20,000 items: :class:`stream.catalog.index.MemoryIndex`), where the store would
scan the whole collection once per shopper. The behaviour consumers do not write items, so the
copy follows the store two ways: each batch compares the store's item count with the copy's
and, when they differ, takes in the new items and drops the deleted ones (:meth:`catch_up`);
and the whole copy is read again every ``refresh_s`` on a worker thread and swapped in, which
also takes in re-encoded items (an item whose text changed is searched with its old vector until
then; a count that stays equal while one item is added and another deleted, too). Scores never lag:
every candidate's price, stock and text stamp (model and content hash) are read from the store
when its list is made, an item deleted meanwhile drops out there, and a vector is taken from the
copy only when the copy holds it for the same stamp (reading vectors from the store costs more
than everything else a batch does).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog

from stream.catalog.index import MemoryIndex, unit
from stream.collections import ITEMS
from stream.store import StoredPoint, StoreError, VectorStore
from stream.store.base import Vector

log = structlog.get_logger(__name__)


_STAMP_FIELDS = ("content_hash", "model")


def stamp(payload: Mapping[str, Any]) -> str | None:
    """What an item's vector is a function of (its text and the model), None when unknown."""
    digest, model = payload.get("content_hash"), payload.get("model")
    return f"{model}:{digest}" if isinstance(digest, str) and isinstance(model, str) else None


@dataclass(frozen=True)
class _Copy:
    index: MemoryIndex | None
    stamps: dict[str, str | None]


def _load(store: VectorStore, k: int) -> _Copy:
    """Every stored item's vector in a new index whose searches return ``k`` rows."""
    index: MemoryIndex | None = None
    stamps: dict[str, str | None] = {}
    batch: dict[str, Vector] = {}
    for point in store.scroll(ITEMS, with_vectors=True, fields=_STAMP_FIELDS):
        if point.vector is None:
            continue
        batch[point.key] = point.vector
        stamps[point.key] = stamp(point.payload)
        if len(batch) >= 10_000:
            index = index or MemoryIndex(len(point.vector), k)
            index.put(batch)
            batch = {}
    if batch:
        index = index or MemoryIndex(len(next(iter(batch.values()))), k)
        index.put(batch)
    return _Copy(index, stamps)


class ItemIndex:
    """The items' vectors, refreshed from the store every ``refresh_s`` on a worker thread."""

    def __init__(self, store: VectorStore, k: int, refresh_s: float) -> None:
        self.store = store
        self.k = k
        self.refresh_s = refresh_s
        self._copy = _load(store, k)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh, name="item-index", daemon=True)
        self._thread.start()

    def catch_up(self) -> None:
        """When the store's item count differs from the copy's, take in the items stored (or
        re-encoded) since it was read and drop the deleted ones: the item keys and stamps are
        read (not the vectors), then the vectors of what is new. A copy with as many items as
        the store waits for its next refresh."""
        copy = self._copy
        if self.store.count(ITEMS) == len(copy.stamps):
            return
        current = {p.key: stamp(p.payload) for p in self.store.scroll(ITEMS, fields=_STAMP_FIELDS)}
        gone = [k for k in copy.stamps if k not in current]
        new = [k for k, st in current.items() if k not in copy.stamps or copy.stamps[k] != st]
        fetched = self.store.retrieve(ITEMS, new, with_vectors=True, fields=()) if new else {}
        vectors = {k: p.vector for k, p in fetched.items() if p.vector is not None}
        index = copy.index
        if index is None and vectors:
            index = MemoryIndex(len(next(iter(vectors.values()))), self.k)
        if index is not None:
            index.remove(gone)
            index.put(vectors)
        stamps = {k: st for k, st in copy.stamps.items() if k in current}
        stamps.update((k, current[k]) for k in vectors)
        self._copy = _Copy(index, stamps)

    def _refresh(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                self._copy = _load(self.store, self.k)
            except StoreError as exc:  # keep the copy we have; the next round tries again
                log.warning("item_index.refresh_failed", error=str(exc)[:300])

    def nearest(
        self, profiles: Mapping[str, Vector], exclude: Mapping[str, set[str]], n: int
    ) -> dict[str, list[str]]:
        """Each profile's ``n`` nearest items, best first, leaving out its ``exclude`` (the
        search reads ``k`` rows: fewer come back when more than ``k - n`` are excluded)."""
        index = self._copy.index  # one copy for the whole call, whatever a refresh swaps in
        users = list(profiles)
        if not users or index is None or not len(index):
            return {u: [] for u in users}
        queries = np.stack([np.asarray(profiles[u], dtype=np.float32) for u in users])
        found = index.search(queries, np.full(len(users), -1, dtype=np.intp), None)
        out = {}
        for q, user in enumerate(users):
            keys = (index.keys[int(r)] for r in found.top_rows[q])
            skip = exclude.get(user, set())
            out[user] = [k for k in keys if k not in skip][:n]
        return out

    def with_vectors(self, points: Mapping[str, StoredPoint]) -> dict[str, StoredPoint]:
        """``points`` (read without vectors, with the stamp fields) with their vectors: from the
        copy where it holds the same stamp, else read from the store."""
        copy = self._copy
        rows = copy.index.rows if copy.index is not None else {}
        matrix = copy.index.matrix if copy.index is not None else None
        stamps = copy.stamps
        out: dict[str, StoredPoint] = {}
        missing = []
        for k, p in points.items():
            held = stamps.get(k)
            if matrix is not None and k in rows and held is not None and held == stamp(p.payload):
                out[k] = StoredPoint(k, p.payload, matrix[rows[k]])
            else:
                missing.append(k)
        if missing:
            fetched = self.store.retrieve(ITEMS, missing, with_vectors=True, fields=())
            found = [k for k in missing if k in fetched and fetched[k].vector is not None]
            if found:  # normalised as the copy's are: the same vector whichever way it came
                vectors = unit(np.stack([fetched[k].vector for k in found]))  # type: ignore[misc]
                out.update(
                    (k, StoredPoint(k, points[k].payload, v))
                    for k, v in zip(found, vectors, strict=True)
                )
        return out

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
