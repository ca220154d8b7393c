"""Which neighbour lists a batch changes, and what they are now.

Every item's payload remembers the list last published for it: ``nb_ids``, ``nb_scores`` and
``nb_floor`` (the k-th score, or -2 when the list is shorter than k). A changed item X enters
item Y's list exactly when ``cos(X, Y) > Y.nb_floor``. Searching around X in pages, each next
page restricted to points whose floor is below the lowest score seen so far, finds every such Y
without scanning the catalogue: a Y further away has a lower cosine, so it can only qualify with
a lower floor. Lists that name a changed or deleted item are found through the ``nb_ids`` index.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import structlog

from stream.store import Hit, SearchQuery, VectorStore, Where
from stream.store.base import Vector

log = structlog.get_logger(__name__)

NO_FLOOR = -2.0
"""Floor of a list shorter than k: any item qualifies (cosine >= -1)."""
SCORE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class NeighbourState:
    """A list as published: ids and scores, best first."""

    ids: tuple[str, ...]
    scores: tuple[float, ...]

    @classmethod
    def from_hits(cls, hits: list[Hit]) -> NeighbourState:
        return cls(tuple(h.key for h in hits), tuple(round(h.score, 6) for h in hits))

    @classmethod
    def from_payload(cls, payload: Mapping[str, object]) -> NeighbourState | None:
        """The recorded list, or None when there is none or it is not well formed."""
        ids, scores = payload.get("nb_ids"), payload.get("nb_scores")
        if not isinstance(ids, list) or not isinstance(scores, list) or len(ids) != len(scores):
            return None
        if not all(isinstance(s, int | float) and not isinstance(s, bool) for s in scores):
            return None
        return cls(tuple(str(i) for i in ids), tuple(float(s) for s in scores))

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
        return {"nb_ids": list(self.ids), "nb_scores": list(self.scores), "nb_floor": floor}


class NeighbourFinder:
    """Finds affected lists and computes top-k lists in the ``collection`` of ``store``."""

    def __init__(
        self, store: VectorStore, collection: str, k: int, page: int = 64, max_pages: int = 16
    ) -> None:
        self.store = store
        self.collection = collection
        self.k = k
        self.page = page
        self.max_pages = max_pages

    def listing(self, keys: Iterable[str]) -> set[str]:
        """Items whose last published list names any of ``keys``."""
        out: set[str] = set()
        for key in keys:
            out.update(self.store.keys_where(self.collection, Where(contains=("nb_ids", key))))
        return out

    def entered_by(self, changed: Mapping[str, Vector]) -> set[str]:
        """Items whose list each changed vector now enters (its cosine beats their floor)."""
        affected: set[str] = set()
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
                    if floor is None or h.score > float(floor):
                        affected.add(h.key)
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
        return affected - set(changed)

    def top_k(self, vectors: Mapping[str, Vector]) -> dict[str, NeighbourState]:
        """The current top-k list of each item (itself excluded), in one batched search."""
        keys = list(vectors)
        queries = [SearchQuery(vectors[k], self.k, Where(frozenset({k}))) for k in keys]
        results = self.store.search(self.collection, queries)
        return {k: NeighbourState.from_hits(h) for k, h in zip(keys, results, strict=True)}
