"""What the query endpoints compute, from the store the consumers write and with their code.

- Similar items: an exact top-k search of the ``items`` collection with the item's stored
  vector, the item itself left out, with the lists' settings (in stock only, a minimum score):
  with no filter, the list ``items.neighbours`` holds for it (those lists are an exact top-k of
  the same vectors).
- Recommendations: :meth:`stream.ranking.recommender.Recommender.recommend` on the shopper's
  stored history, as the behaviour consumer computes them.
- Search: the query text encoded by the process's encoder (loaded on first use where the
  process has none), then the same exact search.

The encoder and the recommender are not shared with the consumers' threads and are used by one
request at a time.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime

from encoders import Encoder, load_encoder
from encoders.text import clean
from schemas.outputs import Neighbour, NeighbourList, Recommendations
from stream.behaviour.processor import recommendations_message
from stream.collections import ITEMS, USERS
from stream.http.filters import ItemFilters
from stream.http.models import FoundItem, SearchResults
from stream.ranking.profile import history_from_payload
from stream.ranking.recommender import Recommender
from stream.settings import Settings
from stream.store import SearchQuery, VectorStore


class BlankQuery(ValueError):
    """A search text with nothing to encode once cleaned."""


class Queries:
    """The answers of the query endpoints; ``encoder``: the process's, when it has one."""

    def __init__(
        self, settings: Settings, store: VectorStore, encoder: Encoder | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self._encoder = encoder
        self._encoder_lock = threading.Lock()
        self._recommender: Recommender | None = None
        self._recommender_lock = threading.Lock()

    def similar(self, item_id: str, k: int, filters: ItemFilters) -> NeighbourList | None:
        """The item's ``k`` most similar items that pass the filters, best first; None when
        the store holds no such item (unknown or deleted)."""
        point = self.store.retrieve(ITEMS, [item_id], with_vectors=True).get(item_id)
        if point is None or point.vector is None:
            return None
        if self.settings.lists_in_stock_only and filters.in_stock is None:
            filters = replace(filters, in_stock=True)  # as the lists on the topic
        query = SearchQuery(point.vector, k, filters.where(frozenset({item_id})), exact=True)
        least = self.settings.lists_min_score
        hits = [h for h in self.store.search(ITEMS, [query])[0] if h.score >= least]
        version = point.payload.get("version")
        return NeighbourList(
            item_id=item_id,
            neighbours=[Neighbour(item_id=h.key, score=h.score) for h in hits],
            model=str(point.payload.get("model") or ""),
            item_version=version if isinstance(version, int) else None,
            generated_at=datetime.now(UTC),
        )

    def search(self, text: str, k: int, filters: ItemFilters) -> SearchResults:
        """The ``k`` items whose texts are nearest the query's, that pass the filters."""
        text = clean(text)
        if not text:
            raise BlankQuery("query has no visible characters")
        with self._encoder_lock:
            if self._encoder is None:
                self._encoder = load_encoder(self.settings)
            vector = self._encoder.encode([text])[0]
        hits = self.store.search(ITEMS, [SearchQuery(vector, k, filters.where(), exact=True)])[0]
        return SearchResults(
            items=[
                FoundItem(item_id=h.key, score=h.score, title=_text(h.payload.get("title")))
                for h in hits
            ]
        )

    def recommendations(self, user_id: str, n: int) -> Recommendations:
        """The shopper's list as the behaviour consumer would publish it now, cut to ``n``
        (``n`` <= ``recommendations_n``: the list's first ``n`` are the best ``n``). A shopper
        the store has no history for gets an empty list."""
        point = self.store.retrieve(USERS, [user_id], fields=("history",)).get(user_id)
        history = history_from_payload(point.payload.get("history")) if point else []
        with self._recommender_lock:
            if self._recommender is None:
                self._recommender = Recommender(self.settings, self.store)
            ranked = self._recommender.recommend(history).ranked
        return recommendations_message(user_id, ranked[:n], datetime.now(UTC))

    def close(self) -> None:
        """Stop the recommender's refresh of its copy of the items, if it was started."""
        with self._recommender_lock:
            if self._recommender is not None:
                self._recommender.close()
                self._recommender = None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
