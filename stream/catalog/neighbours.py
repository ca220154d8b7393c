"""Which neighbour lists a batch changes, and what they are now.

Every item's payload remembers the list last published for it: ``nb_ids``, ``nb_scores`` and
``nb_floor`` (the k-th score, or -2 when the list is shorter than k). A changed item X enters
item Y's list exactly when ``cos(X, Y) > Y.nb_floor``; Y's new list is then its recorded list
with X merged in (:func:`merged`), no search needed, as long as nothing on Y's list changed or
left. Lists that name a changed or deleted item are found through the ``nb_ids`` index and
recomputed with a top-k search.

Two finders answer "whose lists does X enter" and "what is Y's top k":

- :class:`MemoryFinder` (the default with an embedded store): exact matrix products against an
  in-memory copy of the catalogue (:mod:`stream.catalog.index`).
- :class:`StoreFinder` (a shared Qdrant server): store queries. The reverse search goes in pages
  around X, each next page restricted to points whose floor is below the lowest score seen so
  far: a Y further away has a lower cosine, so it can only qualify with a lower floor.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import structlog
import torch

from stream.catalog.index import NO_FLOOR, MemoryIndex, unit
from stream.settings import Settings
from stream.store import Hit, SearchQuery, VectorStore, Where
from stream.store.base import Payload, Vector

log = structlog.get_logger(__name__)

SCORE_TOLERANCE = 1e-6
_NUMBERS = {int, float}


@dataclass(frozen=True)
class NeighbourState:
    """A list as published: ids and scores, best first."""

    ids: tuple[str, ...]
    scores: tuple[float, ...]

    @classmethod
    def from_hits(cls, hits: list[Hit]) -> NeighbourState:
        return cls(tuple(h.key for h in hits), tuple(round(h.score, 6) for h in hits))

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, float]]) -> NeighbourState:
        pairs = list(pairs)
        return cls(tuple(k for k, _ in pairs), tuple(round(float(s), 6) for _, s in pairs))

    @classmethod
    def from_payload(cls, payload: Mapping[str, object]) -> NeighbourState | None:
        """The recorded list, or None when there is none or it is not well formed. Scores are
        recorded as one comma-separated string (:meth:`payload`); a list of numbers is read too."""
        ids, scores = payload.get("nb_ids"), payload.get("nb_scores")
        if not isinstance(ids, list):
            return None
        if isinstance(scores, str):
            try:
                values = tuple(map(float, scores.split(","))) if scores else ()
            except ValueError:
                return None
        elif isinstance(scores, list) and set(map(type, scores)) <= _NUMBERS:  # bool is no score
            values = tuple(map(float, scores))
        else:
            return None
        if len(ids) != len(values) or not all(map(math.isfinite, values)):
            return None
        return cls(tuple(map(str, ids)), values)

    def same_as(self, other: NeighbourState | None) -> bool:
        return (
            other is not None
            and self.ids == other.ids
            and len(self.scores) == len(other.scores)
            and all(
                abs(a - b) <= SCORE_TOLERANCE
                for a, b in zip(self.scores, other.scores, strict=True)
            )
        )

    def payload(self, k: int) -> dict[str, object]:
        floor = self.scores[k - 1] if len(self.scores) >= k else NO_FLOOR
        # the scores as one string: Qdrant Edge's binding converts a payload list element by
        # element (~2.5 us each), and this record is written for every list published
        scores = ",".join(map(repr, self.scores))
        return {"nb_ids": list(self.ids), "nb_scores": scores, "nb_floor": floor}


def merged(state: NeighbourState, entries: Mapping[str, float], k: int) -> NeighbourState:
    """``state`` with items that entered it (id -> cosine) merged in, best k kept.

    Exact when ``state`` was the top k and no item on it changed or left since (then every
    other item that can now be on the list is among ``entries``)."""
    scores = dict(zip(state.ids, state.scores, strict=True))
    scores.update(entries)
    best = sorted(scores.items(), key=lambda pair: -pair[1])[:k]
    return NeighbourState.from_pairs(best)


Entries = dict[str, dict[str, float]]
"""List owner -> {changed item that enters its list: cosine}."""


class NeighbourFinder:
    """What both finders share: the ``nb_ids`` index lookup, and hooks a cache needs."""

    def __init__(self, store: VectorStore, collection: str, k: int) -> None:
        self.store = store
        self.collection = collection
        self.k = k

    def listing(self, keys: Iterable[str]) -> set[str]:
        """Items whose last published list names any of ``keys``."""
        out: set[str] = set()
        for key in keys:
            out.update(self.store.keys_where(self.collection, Where(contains=("nb_ids", key))))
        return out

    def entered_by(self, changed: Mapping[str, Vector]) -> Entries:
        """Items (not themselves changed) whose list each changed vector now enters."""
        raise NotImplementedError

    def top_k(self, keys: Iterable[str]) -> dict[str, NeighbourState]:
        """The current top-k list of each stored item among ``keys`` (itself excluded)."""
        raise NotImplementedError

    def written(self, upserted: Mapping[str, Vector], removed: Iterable[str]) -> None:
        """The store now holds these vectors and no longer these keys."""

    def recorded(self, lists: Mapping[str, Payload]) -> None:
        """The store now records these lists (``NeighbourState.payload``) as published."""

    def reset(self) -> None:
        """A write may have failed half done: forget anything cached about the store."""


class StoreFinder(NeighbourFinder):
    """Every answer from store queries: right for a store other processes write too."""

    def __init__(
        self, store: VectorStore, collection: str, k: int, page: int = 64, max_pages: int = 16
    ) -> None:
        super().__init__(store, collection, k)
        self.page = page
        self.max_pages = max_pages

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
                queries.append(SearchQuery(changed[key], self.page, Where(seen, below=below)))
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
        queries = [SearchQuery(v, self.k, Where(frozenset({k}))) for k, v in vectors.items()]
        results = self.store.search(self.collection, queries)
        return {k: NeighbourState.from_hits(h) for k, h in zip(vectors, results, strict=True)}


_INDEXES: weakref.WeakKeyDictionary[VectorStore, MemoryIndex] = weakref.WeakKeyDictionary()


class MemoryFinder(NeighbourFinder):
    """Exact answers from matrix products against an in-memory copy of the collection, shared
    by every finder on the same store object, built from the store on first use."""

    def __init__(self, store: VectorStore, collection: str, k: int, dim: int) -> None:
        super().__init__(store, collection, k)
        self.dim = dim
        self._tops: dict[str, NeighbourState] = {}

    @property
    def index(self) -> MemoryIndex:
        index = _INDEXES.get(self.store)
        if index is None:
            index = MemoryIndex.load(self.store, self.collection, self.dim)
            _INDEXES[self.store] = index
            log.info("neighbours.index_loaded", items=len(index))
        return index

    def entered_by(self, changed: Mapping[str, Vector]) -> Entries:
        """As the base class says; the same matrix product also gives each changed item's own
        top k, kept for the :meth:`top_k` call that follows (until the next write)."""
        index = self.index
        self._tops = {}
        keys = list(changed)
        if not keys or not len(index):
            return {}
        own_rows = [index.rows[k] for k in keys if k in index.rows]
        queries = unit(np.asarray([changed[k] for k in keys], dtype=np.float32))
        entries: Entries = {}
        for part, scores in index.scores(queries):
            enters = scores > index.floors[np.newaxis, :]
            enters[:, own_rows] = False
            for row, col in zip(*np.nonzero(enters), strict=True):
                owner = index.keys[col]
                entries.setdefault(owner, {})[keys[part.start + row]] = float(scores[row, col])
            self._tops.update(self._best(index, keys[part], scores))
        return entries

    def top_k(self, keys: Iterable[str]) -> dict[str, NeighbourState]:
        index = self.index
        keys = list(keys)
        out = {k: self._tops[k] for k in keys if k in self._tops}
        found = [k for k in keys if k in index.rows and k not in out]
        queries = index.matrix[[index.rows[k] for k in found]]
        for part, scores in index.scores(queries):
            out.update(self._best(index, found[part], scores))
        return out

    def _best(
        self, index: MemoryIndex, keys: list[str], scores: Vector
    ) -> dict[str, NeighbourState]:
        """Top k of each stored key among ``keys`` from its row of ``scores`` (modified)."""
        size = min(self.k, len(index) - 1)
        for row, key in enumerate(keys):
            if key in index.rows:
                scores[row, index.rows[key]] = -np.inf  # never its own neighbour
        if size <= 0:
            return {k: NeighbourState((), ()) for k in keys if k in index.rows}
        # torch.topk: threaded and ~14x numpy's argpartition on 256 x 100,000 scores here
        top = torch.topk(torch.from_numpy(scores), size, dim=1, sorted=True)
        values, cols = top.values.numpy(), top.indices.numpy()
        out = {}
        for row, key in enumerate(keys):
            if key in index.rows:
                out[key] = NeighbourState.from_pairs(
                    (index.keys[c], v) for c, v in zip(cols[row], values[row], strict=True)
                )
        return out

    def written(self, upserted: Mapping[str, Vector], removed: Iterable[str]) -> None:
        self._tops = {}
        index = self.index
        index.put(upserted)
        index.remove(removed)

    def recorded(self, lists: Mapping[str, Payload]) -> None:
        self._tops = {}
        self.index.set_floors({k: float(p["nb_floor"]) for k, p in lists.items()})

    def reset(self) -> None:
        self._tops = {}
        forget(self.store)


def forget(store: VectorStore) -> None:
    """Drop the in-memory copy of ``store``'s catalogue: for code that wrote the items
    collection other than through a catalog processor (the next batch reloads it)."""
    _INDEXES.pop(store, None)


def finder_for(
    store: VectorStore, settings: Settings, collection: str, dim: int
) -> NeighbourFinder:
    """The finder ``RECSTREAM_NEIGHBOUR_SEARCH`` asks for; ``auto``: in memory when no other
    process can write the store (embedded engine, qdrant-client local mode), else the store."""
    mode = settings.neighbour_search
    if mode == "memory" or (mode == "auto" and store.exclusive):
        return MemoryFinder(store, collection, settings.neighbours_k, dim)
    return StoreFinder(
        store,
        collection,
        settings.neighbours_k,
        settings.reverse_search_page,
        settings.reverse_search_max_pages,
    )
