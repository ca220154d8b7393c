"""Which neighbour lists a batch changes, and what they are now.

Every item has a record of the list last published for it: its ids and scores, and its floor
(the k-th score, or -2 when the list is shorter than k). A changed item X enters item Y's list
exactly when ``cos(X, Y) > Y.floor``; Y's new list is then its recorded list with X merged in
(:func:`merged`), no search needed, as long as nothing on Y's list changed or left. Lists that
name a changed or deleted item are recomputed with a top-k search, and so is the list of an item
with no record (new, or its record lost): the memory finder names those a bounded number per
batch (:data:`REPAIR_CHUNK`) rather than have every changed item enter each.

Two finders answer "whose lists does X enter", "what is Y's top k", "which lists name X" and
"what was last published for Y", and each keeps the records its own way:

- :class:`MemoryFinder` (the default with an embedded store): exact matrix products against an
  in-memory copy of the catalogue and of the records (:mod:`stream.catalog.index`). Records are
  persisted as a journal in the ``item_lists`` collection, one point per batch holding the
  messages as published (:mod:`stream.catalog.journal`).
- :class:`StoreFinder` (a shared Qdrant server): store queries. Records are item-payload fields
  (``nb_ids`` keyword-indexed, ``nb_floor`` float-indexed). The reverse search goes in pages
  around X, each next page restricted to points whose floor is below the lowest score seen so
  far: a Y further away has a lower cosine, so it can only qualify with a lower floor.

Switching between them keeps the records: the memory finder reads item-payload records where its
journal has none, and before a store finder starts, ``recstream run`` moves the journal's
records into the item payloads (:func:`adopt_records`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import structlog

from encoders.bert import cpu_capabilities, native_bf16
from stream.catalog.index import MemoryIndex, unit
from stream.catalog.journal import JournalDamaged, ListJournal, journal_line
from stream.catalog.lists import NO_FLOOR, NeighbourState
from stream.catalog.search import Found
from stream.catalog.state import CatalogState
from stream.collections import ITEM_LISTS
from stream.settings import Settings
from stream.store import SearchQuery, StoredPoint, VectorStore, Where
from stream.store.base import Vector

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ListRecord:
    """What a stored item's published list says: the item's version and its recorded list
    (None when none was recorded)."""

    version: int | None
    state: NeighbourState | None


Entries = dict[str, dict[str, float]]
"""List owner -> {changed item that enters its list: cosine}."""


class NeighbourFinder:
    """What the catalog processor asks about lists; each finder answers from its own place."""

    def __init__(
        self, store: VectorStore, collection: str, k: int, in_stock_only: bool = False
    ) -> None:
        self.store = store
        self.collection = collection
        self.k = k
        self.in_stock_only = in_stock_only
        """Lists name only items whose payload does not say ``in_stock: false``; an item out
        of stock still has its own list."""

    def listing(self, keys: Iterable[str]) -> set[str]:
        """Items whose last published list names any of ``keys``."""
        raise NotImplementedError

    def records(self, keys: Iterable[str]) -> dict[str, ListRecord]:
        """The record of each stored item among ``keys``."""
        raise NotImplementedError

    def entered_by(self, changed: Mapping[str, Vector]) -> Entries:
        """Items (not themselves changed) whose list each changed vector now enters. An item
        with no recorded list may be given with fewer entries, or none: its list is to be
        computed afresh (:meth:`top_k`), not merged."""
        raise NotImplementedError

    def top_k(self, keys: Iterable[str]) -> dict[str, NeighbourState]:
        """The current top-k list of each stored item among ``keys`` (itself excluded)."""
        raise NotImplementedError

    def written(
        self,
        upserted: Mapping[str, Vector],
        removed: Iterable[str],
        versions: Mapping[str, int | None],
        hidden: Mapping[str, bool] | None = None,
    ) -> None:
        """The store now holds these vectors and item versions, and no longer these keys;
        ``hidden``: items written now that lists may (False) or may not (True) name."""

    def record(
        self, lists: Mapping[str, NeighbourState], messages: Mapping[str, bytes] | None = None
    ) -> None:
        """Record these lists as published, durably (the offsets are committed next);
        ``messages``: their values as published, for a finder that keeps those."""
        raise NotImplementedError

    def reset(self, keys: Iterable[str] | None = None) -> None:
        """A write may have failed half done: forget what is cached about the store, of these
        items only (the batch's) when given, else everything."""


class StoreFinder(NeighbourFinder):
    """Every answer from store queries (exact ones: no approximate index), right for a store
    other processes write too."""

    def __init__(
        self,
        store: VectorStore,
        collection: str,
        k: int,
        page: int = 64,
        max_pages: int = 16,
        in_stock_only: bool = False,
    ) -> None:
        super().__init__(store, collection, k, in_stock_only)
        self.page = page
        self.max_pages = max_pages

    def listing(self, keys: Iterable[str]) -> set[str]:
        out: set[str] = set()
        for key in keys:
            # nb_pending: lists the lists consumer is about to give the item (stream.catalog.owners)
            for field in ("nb_ids", "nb_pending"):
                out.update(self.store.keys_where(self.collection, Where(contains=(field, key))))
        return out

    def records(self, keys: Iterable[str]) -> dict[str, ListRecord]:
        points = self.store.retrieve(self.collection, sorted(keys))
        return {
            k: ListRecord(p.payload.get("version"), NeighbourState.from_payload(p.payload))
            for k, p in points.items()
        }

    def record(
        self, lists: Mapping[str, NeighbourState], messages: Mapping[str, bytes] | None = None
    ) -> None:
        self.store.set_payload(self.collection, {k: s.payload(self.k) for k, s in lists.items()})

    def adopt_packed(self, packed: str = ITEM_LISTS) -> None:
        """Move the records a memory finder left (the ``packed`` collection's journal) into
        the items' payloads, where this finder reads them: a consumer switched from ``memory``
        to ``store`` search must not work from the older records there."""
        journal = ListJournal(self.store, packed)
        try:
            records = journal.load()
        except JournalDamaged as exc:
            # the item payloads' records are older than what the journal held: none is kept
            log.error("neighbours.journal_damaged", error=str(exc), action="lists recomputed")
            stale = [p.key for p in self.store.scroll(self.collection) if "nb_ids" in p.payload]
            self.store.set_payload(self.collection, dict.fromkeys(stale, _NO_RECORD))
            records = {}
        if not records:
            journal.clear()
            return
        lists = {k: s for k, s in records.items() if s is not None}
        self.record(lists)  # items deleted meanwhile are skipped by set_payload
        journal.clear()
        malformed = len(records) - len(lists)
        log.info("neighbours.records_adopted", lists=len(lists), malformed=malformed)

    def entered_by(self, changed: Mapping[str, Vector]) -> Entries:
        entries: Entries = {}
        # per changed item: keys seen so far and the lowest score seen so far
        active: dict[str, tuple[frozenset[str], float | None]] = {
            key: (frozenset({key}), None) for key in changed
        }
        pages = 0
        while active and pages < self.max_pages:
            pages += 1
            keys = list(active)
            queries = []
            for key in keys:
                seen, lowest = active[key]
                below = ("nb_floor", lowest) if lowest is not None else None
                queries.append(
                    SearchQuery(changed[key], self.page, Where(seen, below=below), exact=True)
                )
            results = self.store.search(self.collection, queries)
            nxt: dict[str, tuple[frozenset[str], float | None]] = {}
            for key, hits in zip(keys, results, strict=True):
                for h in hits:
                    floor = h.payload.get("nb_floor")
                    if h.key not in changed and (floor is None or h.score > float(floor)):
                        entries.setdefault(h.key, {})[key] = h.score
                if len(hits) == self.page:
                    seen = active[key][0] | {h.key for h in hits}
                    nxt[key] = (seen, hits[-1].score)
            active = nxt
        if active:
            log.warning(
                "neighbours.reverse_search_truncated",
                items=len(active),
                max_pages=self.max_pages,
                hint="raise RECSTREAM_REVERSE_SEARCH_MAX_PAGES",
            )
        return entries

    def top_k(self, keys: Iterable[str]) -> dict[str, NeighbourState]:
        points = self.store.retrieve(self.collection, sorted(keys), with_vectors=True)
        vectors = {k: p.vector for k, p in points.items() if p.vector is not None}
        stock = ("in_stock", True) if self.in_stock_only else None
        queries = [
            SearchQuery(v, self.k, Where(frozenset({k}), flag=stock), exact=True)
            for k, v in vectors.items()
        ]
        results = self.store.search(self.collection, queries)
        return {k: NeighbourState.from_hits(h) for k, h in zip(vectors, results, strict=True)}


_NO_RECORD = {"nb_ids": None, "nb_scores": None, "nb_floor": NO_FLOOR}
"""Item-payload fields of an item with no recorded list: every item enters it, and it is
recomputed when next affected."""
LOAD_CHUNK = 1_024
"""Items read from the store, normalised and copied into the index at a time (5.8 MB at the
default 1,408 dimensions)."""
RESERVED_ROWS = 131_072
"""Rows the copy has room for from its load, however small the catalogue: a catalogue that
grows from empty copies its matrix first past this size, not at each doubling from 1,024
(at 16,384 rows the copy held a steady load's events ~0.6 s: bench/README.md). The matrix's
unwritten pages cost nothing; the other per-row arrays ~50 bytes a row."""
REPAIR_CHUNK = 2_048
"""Items with no recorded list (records lost, or a list never recorded) whose list a batch
computes afresh, at most: a loss of every record is repaired over catalogue / this batches."""


class MemoryFinder(NeighbourFinder):
    """Exact answers from an in-memory copy of the collection and of the records, built from
    the store on first use and kept in ``state`` (shared by the finders given the same one; a
    finder without one has its own). Records are persisted as a journal in the ``lists``
    collection, one entry per batch."""

    def __init__(
        self,
        store: VectorStore,
        collection: str,
        k: int,
        dim: int,
        lists: str = ITEM_LISTS,
        in_stock_only: bool = False,
        load_chunk: int = LOAD_CHUNK,
        repair: int = REPAIR_CHUNK,
        state: CatalogState | None = None,
        screen: bool = False,
        cluster_order: bool = True,
    ) -> None:
        """``screen``: the copy keeps its vectors in bfloat16 too, to search roughly first
        (:class:`stream.catalog.search.Screen`). ``cluster_order``: its rows are kept in
        cluster order (:class:`stream.catalog.index.MemoryIndex`)."""
        super().__init__(store, collection, k, in_stock_only)
        self.state = state or CatalogState()
        self.screen = screen
        self.cluster_order = cluster_order
        self.dim = dim
        self.lists = lists
        self.load_chunk = load_chunk
        self.repair = repair
        self._tops: dict[str, NeighbourState] = {}

    @property
    def journal(self) -> ListJournal:
        """The journal of records, one per state (as the index)."""
        journal = self.state.journal
        if journal is None:
            journal = self.state.journal = ListJournal(self.store, self.lists)
        if journal.collection != self.lists:
            raise ValueError(f"{self.store!r} keeps its records in {journal.collection!r}")
        return journal

    @property
    def index(self) -> MemoryIndex:
        index = self.state.index
        if index is None:
            index = self.state.index = self._load()
            self.state.suspect = set()
            log.info("neighbours.index_loaded", items=len(index))
        elif self.state.suspect:
            self._reread(index, sorted(self.state.suspect))
            self.state.suspect = set()
        return index

    def _reread(self, index: MemoryIndex, keys: list[str]) -> None:
        """Make the copy of ``keys`` what the store holds: a batch that failed may have written
        some of them and not told the copy. Their recorded lists stay: a batch records lists
        only once everything it wrote landed, and a redone batch records them again."""
        stored = self.store.retrieve(self.collection, keys, with_vectors=True)
        present = {p.key for p in self._take(index, stored.values())}
        gone = [k for k in keys if k not in present and k in index.rows]
        index.remove(gone)
        self.journal.append({}, gone)
        log.info("neighbours.index_reread", items=len(keys), gone=len(gone))

    def _take(self, index: MemoryIndex, points: Iterable[StoredPoint]) -> list[StoredPoint]:
        """Put the points that have a vector into the copy, as the store holds them (vector,
        version, and with in-stock-only lists whether they may be named); returns those."""
        vectors: dict[str, Vector] = {}
        held = []
        for point in points:
            if point.vector is not None:
                vectors[point.key] = point.vector
                held.append(point)
        index.put(vectors, {p.key: p.payload.get("version") for p in held})
        if self.in_stock_only:
            index.hide({p.key: p.payload.get("in_stock") is False for p in held})
        return held

    def _load(self) -> MemoryIndex:
        """Every vector and version from the items, every record from the journal where it has
        one, else from the item payload (written by a store finder). Records of items no longer
        stored (a crash between an item's deletion and its record's) are dropped in a journal
        entry: the item may come back, with no list yet. A journal that cannot be read is
        cleared, and no list recorded: each is computed again when next affected.

        The items go into the index's matrix, reserved past the catalogue's size, a chunk of
        :data:`LOAD_CHUNK` at a time: the load holds one copy of the catalogue, not the several
        that gathering every vector first took (bench/README.md)."""
        index = MemoryIndex(self.dim, self.k, screen=self.screen, cluster_order=self.cluster_order)
        # room to grow by a quarter, and for RESERVED_ROWS at least: each growth copies the
        # matrix on the loop's thread (0.5 s at 100,000 items), and pages never written cost
        # no memory
        stored = self.store.count(self.collection)
        index.reserve(max(stored + stored // 4 + self.load_chunk, RESERVED_ROWS))
        try:
            journal = self.journal.load()
            damaged = False
        except JournalDamaged as exc:
            log.error("neighbours.journal_damaged", error=str(exc), action="lists recomputed")
            self.journal.clear()
            journal, damaged = {}, True
        outdated: list[str] = []  # item-payload records older than a damaged journal's
        points = self.store.scroll(self.collection, with_vectors=True)
        while chunk := list(itertools.islice(points, self.load_chunk)):
            lists: dict[str, NeighbourState] = {}
            for point in self._take(index, chunk):
                state = NeighbourState.from_payload(point.payload)
                if state is None or point.key in journal:
                    continue  # the journal's record (or its "none") is the newer one
                if damaged:
                    outdated.append(point.key)
                else:
                    lists[point.key] = state
            index.set_lists(lists)
        if damaged:
            # "no record" for each, durably, or the next load would read them again
            self.journal.append({k: journal_line(k, None) for k in outdated}, ())
        orphans = [key for key in journal if key not in index.rows]
        # a damaged line is no record (the list is recomputed), not the item payload's older one
        index.set_lists({k: s for k, s in journal.items() if s is not None})
        self.journal.append({}, orphans)
        return index

    def listing(self, keys: Iterable[str]) -> set[str]:
        return self.index.listing(keys)

    def records(self, keys: Iterable[str]) -> dict[str, ListRecord]:
        index = self.index
        recorded = index.recorded(keys)
        return {k: ListRecord(index.versions.get(k), s) for k, s in recorded.items()}

    def entered_by(self, changed: Mapping[str, Vector]) -> Entries:
        """As the base class says; the same search also gives each changed item's own top k,
        kept for the :meth:`top_k` call that follows (until the next write).

        Items with no recorded list are not searched for (every changed item would enter
        each: batch x catalogue entries once records are lost); up to :attr:`repair` of them
        are given with no entries, whatever changed, so that their lists are computed afresh a
        bounded number per batch until none is left."""
        index = self.index
        self._tops = {}
        keys = list(changed)
        entries: Entries = {}
        if keys and len(index):
            own = np.asarray([index.rows.get(k, -1) for k in keys], dtype=np.intp)
            queries = unit(np.asarray([changed[k] for k in keys], dtype=np.float32))
            found = index.search(queries, own, own[own >= 0])
            for query, row, score in found.entries:
                entries.setdefault(index.keys[row], {})[keys[query]] = score
            self._tops = self._lists(index, keys, found)
        for key in index.unrecorded(self.repair, skip=keys):
            entries[key] = {}
        return entries

    def top_k(self, keys: Iterable[str]) -> dict[str, NeighbourState]:
        index = self.index
        keys = list(keys)
        out = {k: self._tops[k] for k in keys if k in self._tops}
        found = [k for k in keys if k in index.rows and k not in out]
        if found:
            own = np.asarray([index.rows[k] for k in found], dtype=np.intp)
            out.update(self._lists(index, found, index.search(index.matrix[own], own, None)))
        return out

    @staticmethod
    def _lists(index: MemoryIndex, keys: list[str], found: Found) -> dict[str, NeighbourState]:
        """The top-k list of each stored key among ``keys`` (the queries of ``found``)."""
        out = {}
        for key, rows, scores in zip(keys, found.top_rows, found.top_scores, strict=True):
            if key in index.rows:
                names = [index.keys[r] for r in rows.tolist()]
                out[key] = NeighbourState.from_pairs(zip(names, scores.tolist(), strict=True))
        return out

    def written(
        self,
        upserted: Mapping[str, Vector],
        removed: Iterable[str],
        versions: Mapping[str, int | None],
        hidden: Mapping[str, bool] | None = None,
    ) -> None:
        """As the base class says; a removed item's record is dropped in the journal too."""
        self._tops = {}
        index = self.index
        removed = list(removed)
        index.put(upserted, versions)
        index.hide(hidden or {})
        index.remove(removed)
        self.journal.append({}, removed)

    def record(
        self, lists: Mapping[str, NeighbourState], messages: Mapping[str, bytes] | None = None
    ) -> None:
        """As the base class says; the journal line of a list is its message from
        ``messages`` (as published), else one written here."""
        self._tops = {}
        index = self.index  # loaded first: the journal's numbering comes from the store
        messages = messages or {}
        self.journal.append(
            {k: messages.get(k) or journal_line(k, s) for k, s in lists.items()}, ()
        )
        index.set_lists(lists)

    def reset(self, keys: Iterable[str] | None = None) -> None:
        """As the base class says: the given items are read again from the store at the next
        use (a batch's worth, not the catalogue: a reload takes minutes at a million items)."""
        self._tops = {}
        if keys is None:
            self.state.forget()
        else:
            self.state.suspect.update(keys)


def finder_for(
    store: VectorStore,
    settings: Settings,
    collection: str,
    dim: int,
    state: CatalogState | None = None,
) -> NeighbourFinder:
    """The finder ``RECSTREAM_NEIGHBOUR_SEARCH`` asks for; ``auto``: in memory when no other
    process can write the store (embedded engine, qdrant-client local mode), else the store.
    The collections (:func:`stream.collections.ensure_collections`) must exist, and the records
    of an earlier memory finder must have been moved (:func:`adopt_records`)."""
    mode = settings.neighbour_search
    if mode == "memory" or (mode == "auto" and store.exclusive):
        return MemoryFinder(
            store,
            collection,
            settings.neighbours_k,
            dim,
            in_stock_only=settings.lists_in_stock_only,
            state=state,
            screen=screened(settings.neighbour_precision),
            cluster_order=settings.neighbour_cluster_order,
        )
    return StoreFinder(
        store,
        collection,
        settings.neighbours_k,
        settings.reverse_search_page,
        settings.reverse_search_max_pages,
        in_stock_only=settings.lists_in_stock_only,
    )


def screened(precision: str) -> bool:
    """Whether a precision setting (``RECSTREAM_NEIGHBOUR_PRECISION``,
    ``RECSTREAM_RANK_PRECISION``) asks for a bfloat16 first pass."""
    if precision == "auto":
        return native_bf16(cpu_capabilities())
    return precision == "bfloat16"


def adopt_records(store: VectorStore, settings: Settings, collection: str) -> None:
    """Before any catalog consumer starts: with store search, move the records a memory finder
    left (:meth:`StoreFinder.adopt_packed`) into the items' payloads. Nothing to do otherwise
    (the memory finder reads item-payload records where its journal has none)."""
    finder = finder_for(store, settings, collection, 1)
    if isinstance(finder, StoreFinder):
        finder.adopt_packed()
