"""Where shoppers' semantic candidates and items' fields come from: an in-memory copy of them.

A batch's profiles are searched together with matrix products against the copy (exact, or
from 20,000 items near-exact from a bfloat16 copy with ``RECSTREAM_RANK_PRECISION``:
:class:`stream.catalog.index.MemoryIndex`, :mod:`stream.catalog.rough`), where the store would
scan the whole collection once per shopper. The copy holds every item's vector and the fields
the ranking reads (price, stock, the text stamp). The behaviour consumers do not write items, so
the copy follows the store, before every batch (:meth:`ItemIndex.catch_up`):

- what the catalog consumer wrote since the copy last looked: every write stamps the item's
  ``written_at`` (the writer's clock), and the copy asks for the items stamped at or after the
  latest stamp it has seen, less ``CHANGES_MARGIN_S`` (once that stamp has stayed the latest
  for two margins of this reader's own time, from it: every write stamped before it has landed
  by then, so a quiet catalogue is not read again at every batch); their fields are taken in,
  and their vectors read again where the text stamp (model and content hash) changed;
- deleted items: when the store's item count then differs from the copy's, every key is read and
  the items no longer stored are dropped (and items stored without a stamp taken in);
- and the whole copy is read again every ``refresh_s`` on a worker thread, handed over and
  swapped in at the start of the next batch, which asks the change feed again from where the
  copy it replaces had got (writes that landed while it was read).

So a batch ranks with the prices, stock and vectors the store held when it started, at the cost
of reading only what changed (reading every candidate's fields and vectors from the store cost
more than everything else a batch does). The margin covers a write that lands up to 5 s after
it was stamped, and writers (several catalog consumers) whose clocks differ by less than that;
a write later than that, or from a clock further behind, is taken in by the next whole read.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from encoders.hybrid import lexical_width
from stream.catalog.index import MemoryIndex, unit
from stream.collections import ITEMS, WRITTEN_AT
from stream.store import StoredPoint, StoreError, VectorStore
from stream.store.base import Payload, Vector, Where

log = structlog.get_logger(__name__)

FIELDS = ("price", "in_stock", "content_hash", "model")
"""The items' payload fields the copy keeps (what ranking reads)."""

CHANGES_MARGIN_S = 5.0
"""How far before the latest ``written_at`` seen the copy asks again for changes."""
_STAMP_STEP_ULPS = 4
"""How far past the latest stamp read a settled feed's bound lies, in units in the last place."""

_READ = (*FIELDS, WRITTEN_AT)


def stamp(payload: Mapping[str, Any]) -> str | None:
    """What an item's vector is a function of (its text and the model), None when unknown."""
    digest, model = payload.get("content_hash"), payload.get("model")
    return f"{model}:{digest}" if isinstance(digest, str) and isinstance(model, str) else None


def _number(value: object, default: float) -> float:
    """A payload field's number (a bool is not one), else ``default``."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else default  # type: ignore[arg-type]


def _now() -> float:
    """This reader's monotonic clock: how long it has waited, never compared with stamps."""
    return time.monotonic()


def _written(payload: Mapping[str, Any]) -> float:
    return _number(payload.get(WRITTEN_AT), -np.inf)


def _cut(vector: Vector, width: int) -> Vector:
    """``vector`` less its last ``width`` floats (all of it when it has no more)."""
    return vector[: len(vector) - width] if 0 < width < len(vector) else vector


@dataclass
class _Copy:
    index: MemoryIndex | None
    fields: dict[str, Payload]
    seen: float
    """The latest ``written_at`` taken in."""
    lexical: bool
    """Whether the copy holds hybrid vectors whole, else the model's part only."""
    rough: bool
    """Whether its index searches profiles near-exactly (:mod:`stream.catalog.rough`)."""
    capacity: int = 0
    """Rows its index reserves when made: the store's item count when the copy was read."""
    width: int | None = None
    """How many last floats of every stored vector the copy leaves out: the lexical part of
    hybrid vectors, as the model name of an item of the first read says (one collection holds
    vectors of one length and one model: one cut for all, so one length in the copy)."""
    settled: float = -np.inf
    """Every write stamped before this was taken in (:meth:`ItemIndex.catch_up`)."""
    observed: tuple[float, float] = (np.inf, -np.inf)
    """When (the reader's monotonic clock) a read began that first found ``seen`` as it is."""

    def put(self, points: Iterable[StoredPoint], k: int) -> None:
        vectors = self.parts(list(points))
        if self.index is None and vectors:
            # profiles are spread: clusters that failed to prune are not tried at every batch,
            # and the full product they take gains nothing from rows in cluster order
            dim = len(next(iter(vectors.values())))
            self.index = MemoryIndex(
                dim,
                k,
                skip_failed_clusters=True,
                cluster_order=False,
                rough=self.rough,
                records=False,
            )
            self.index.reserve(self.capacity)  # no copies of the matrix while it is read
        if self.index is not None:
            self.index.put(vectors)

    def parts(self, points: Sequence[StoredPoint]) -> dict[str, Vector]:
        """The part of the vector that ranking reads, of each point that has one; the cut is
        fixed by the first points ever given, from the first model name among them."""
        if self.width is None and points:
            named = (p.payload.get("model") for p in points)
            self.width = 0 if self.lexical else lexical_width(next(filter(None, named), None))
        return {p.key: _cut(p.vector, self.width or 0) for p in points if p.vector is not None}


def _load(store: VectorStore, k: int, lexical: bool, rough: bool) -> _Copy:
    """Every stored item's vector (the part ranking reads) and fields in a new index whose
    searches return ``k`` rows."""
    copy = _Copy(None, {}, -np.inf, lexical, rough, capacity=store.count(ITEMS))
    batch: list[StoredPoint] = []
    for point in store.scroll(ITEMS, with_vectors=True, fields=_READ):
        if point.vector is None:
            continue
        batch.append(point)
        copy.fields[point.key] = _kept(point.payload)
        copy.seen = max(copy.seen, _written(point.payload))
        if len(batch) >= 10_000:
            copy.put(batch, k)
            batch = []
    copy.put(batch, k)
    return copy


@dataclass(frozen=True)
class ItemTable:
    """Items as arrays, one row each (``row``: key -> row; keys in order)."""

    keys: list[str]
    row: dict[str, int]
    unit: npt.NDArray[np.float32]
    """Unit vectors (as the copy holds them)."""
    in_stock: npt.NDArray[np.bool_]
    prices: npt.NDArray[np.float64]
    """NaN where unknown."""


def _kept(payload: Mapping[str, Any]) -> Payload:
    return {f: payload[f] for f in FIELDS if f in payload}


class ItemIndex:
    """The items' vectors and fields, caught up with the store before each batch and read again
    whole every ``refresh_s`` on a worker thread. Only :meth:`catch_up` changes the copy in use
    (the worker hands a fresh copy over, it never swaps one in), so the batch that called it
    ranks from one copy throughout."""

    def __init__(
        self,
        store: VectorStore,
        k: int,
        refresh_s: float,
        lexical: bool = False,
        rough: bool = False,
    ) -> None:
        """``rough``: search profiles near-exactly from 20,000 items
        (``RECSTREAM_RANK_PRECISION``; :mod:`stream.catalog.rough`)."""
        self.store = store
        self.k = k
        self.refresh_s = refresh_s
        self.lexical = lexical
        self.rough = rough
        self._copy = _load(store, k, lexical, rough)
        self._lock = threading.Lock()  # guards the hand-over of a copy the worker read
        self._pending: _Copy | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh, name="item-index", daemon=True)
        self._thread.start()

    def catch_up(self) -> None:
        """Swap in the copy the worker read, if one is waiting; take in what was written since
        the copy last looked; then, when the store's item count still differs from the copy's,
        drop the deleted items (see the module's notes). What it has seen advances only once
        everything read was taken in: a batch retried after a store error asks again."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self._copy = pending
        copy = self._copy
        began = _now()
        since = max(copy.seen - CHANGES_MARGIN_S, copy.settled) if np.isfinite(copy.seen) else None
        changes = Where(within=(WRITTEN_AT, since, None))
        seen = self._take_in(copy, list(self.store.scroll(ITEMS, fields=_READ, where=changes)))
        if self.store.count(ITEMS) != len(copy.fields):
            current = {p.key: p for p in self.store.scroll(ITEMS, fields=_READ)}
            gone = [k for k in copy.fields if k not in current]
            if copy.index is not None:
                copy.index.remove(gone)
            for k in gone:
                del copy.fields[k]
            seen = max(seen, self._take_in(copy, current.values()))
        if seen > copy.seen or not np.isfinite(copy.observed[0]):
            copy.seen = max(copy.seen, seen)
            copy.observed = (began, copy.seen)
        # When a read found the latest stamp S, every writer's clock was past S less a margin;
        # a write stamped at most S was made within a margin after that and landed within a
        # margin more: two margins (by this reader's own clock) after that read began, every
        # such write is in the store, and a read since then has taken it in. No later read need
        # ask for stamps up to S again, so a quiet catalogue is not read again at every batch
        # (writers' stamps are compared only with each other, never with this reader's clock).
        first_found, stamp = copy.observed
        if began - first_found >= 2 * CHANGES_MARGIN_S:
            # the store gives a stamp back up to an ulp off the value it holds and filters on
            # (seen with Qdrant Edge: ~2.4e-7 s for a stamp of today), so the bound steps a few
            # ulps (~1 us) past the latest one read, not one: at one, that item came back at
            # every batch. A write stamped within that microsecond after it and landing later
            # would be missed until the copy is read again (refresh_s).
            copy.settled = max(copy.settled, stamp + _STAMP_STEP_ULPS * float(np.spacing(stamp)))

    def _take_in(self, copy: _Copy, points: Iterable[StoredPoint]) -> float:
        """Points read without vectors: their fields, and their vectors where new or re-encoded;
        the latest ``written_at`` among them."""
        new = []
        seen = -np.inf
        for p in points:
            held = copy.fields.get(p.key)
            if held is None or stamp(held) != stamp(p.payload):
                new.append(p.key)
            else:
                copy.fields[p.key] = _kept(p.payload)
            seen = max(seen, _written(p.payload))
        if new:
            fetched = self.store.retrieve(ITEMS, new, with_vectors=True, fields=_READ)
            copy.put(fetched.values(), self.k)
            copy.fields.update(
                (k, _kept(p.payload)) for k, p in fetched.items() if p.vector is not None
            )
        return seen

    def _refresh(self) -> None:
        while not self._stop.wait(self.refresh_s):
            # a write that lands while the whole copy is read may be missed by the read; the
            # copy handed over asks the change feed again from where the copy in use had got
            began = self._copy.seen
            try:
                copy = _load(self.store, self.k, self.lexical, self.rough)
            except StoreError as exc:  # keep the copy we have; the next round tries again
                log.warning("item_index.refresh_failed", error=str(exc)[:300])
                continue
            copy.seen = min(copy.seen, began)
            with self._lock:
                self._pending = copy

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
        keys = index.keys
        out = {}
        for q, user in enumerate(users):
            skip = exclude.get(user, set())
            named = (keys[r] for r in found.top_rows[q].tolist())
            out[user] = list(itertools.islice((k for k in named if k not in skip), n))
        return out

    def points(self, keys: Iterable[str]) -> dict[str, StoredPoint]:
        """The stored items among ``keys``, with the copy's fields and (unit) vectors; an item
        the copy does not hold yet is read from the store."""
        copy = self._copy  # one copy for the whole call, whatever a refresh swaps in
        held, vectors, fetched = self._gather(copy, keys)
        out = {k: StoredPoint(k, copy.fields[k], v) for k, v in zip(held, vectors, strict=True)}
        out.update(fetched)
        return out

    def table(self, keys: Iterable[str]) -> ItemTable:
        """The stored items among ``keys`` as arrays, one row each, in key order."""
        copy = self._copy
        held, vectors, fetched = self._gather(copy, keys)
        fields = copy.fields
        ordered = sorted([*held, *fetched])
        shapes = (
            [vectors.shape]
            if held
            else [p.vector.shape for p in fetched.values() if p.vector is not None]
        )
        dim = shapes[0][-1] if shapes else 0
        row = {k: n for n, k in enumerate(ordered)}
        if not fetched and held == ordered:  # keys given in order, all held: no second copy
            matrix = vectors
        else:
            matrix = np.zeros((len(ordered), dim), dtype=np.float32)
            if held:
                matrix[[row[k] for k in held]] = vectors
            for k, p in fetched.items():
                matrix[row[k]] = p.vector
        payloads = [fields[k] if k in fields else fetched[k].payload for k in ordered]
        return ItemTable(
            ordered,
            row,
            matrix,
            np.array([bool(p.get("in_stock", True)) for p in payloads], dtype=bool),
            np.array([_number(p.get("price"), np.nan) for p in payloads], dtype=np.float64),
        )

    def _gather(
        self, copy: _Copy, keys: Iterable[str]
    ) -> tuple[list[str], npt.NDArray[np.float32], dict[str, StoredPoint]]:
        """The keys the copy holds and their vectors (one gather), and the others read."""
        rows = copy.index.rows if copy.index is not None else {}
        held, at, missing = [], [], []
        for k in keys:
            if k in rows and k in copy.fields:
                held.append(k)
                at.append(rows[k])
            else:
                missing.append(k)
        vectors = (
            copy.index.matrix[at] if copy.index is not None else np.zeros((0, 0), dtype=np.float32)
        )
        fetched: dict[str, StoredPoint] = {}
        if missing:
            found = self.store.retrieve(ITEMS, missing, with_vectors=True, fields=FIELDS)
            usable = [k for k in missing if k in found and found[k].vector is not None]
            if usable:  # the part and norm the copy's have: the same whichever way it came
                parts = copy.parts([found[k] for k in usable])
                unit_vectors = unit(np.stack([parts[k] for k in usable]))
                fetched = {
                    k: StoredPoint(k, found[k].payload, v)
                    for k, v in zip(usable, unit_vectors, strict=True)
                }
        return held, vectors, fetched

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
