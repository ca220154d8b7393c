"""Recommendations for one shopper, from what the store holds: candidates, then :func:`rank`.

Candidates come from three sources, each at most ``rank_candidates`` items: the items nearest
to the shopper's profile vector (semantic), the items that co-occur with the shopper's recent
items (collaborative), and the most popular items (cold start). Every candidate then gets all
four components, so a popular item can also score on price, and a semantic one on popularity.
All times are the shopper's last interaction time, so the same history always gives the same
list, whenever it is computed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from stream.behaviour.profile import (
    Interaction,
    price_preference,
    profile_vector,
    recent_items,
    recently_purchased,
)
from stream.behaviour.stats import cooccurrence_at, popularity_at
from stream.collections import ITEM_STATS, ITEMS
from stream.ranking.blend import Candidate, Ranked, Weights, rank
from stream.settings import Settings
from stream.store import SearchQuery, VectorStore, Where
from stream.store.base import Vector


@dataclass(frozen=True)
class Recommendation:
    ranked: list[Ranked]
    profile: Vector | None


class Recommender:
    def __init__(self, settings: Settings, store: VectorStore) -> None:
        self.s = settings
        self.store = store
        self.weights = Weights.from_settings(settings)
        self.behaviour_weights = settings.behaviour_weights()

    def recommend(self, history: Sequence[Interaction]) -> Recommendation:
        """The shopper's list (``recommendations_n`` long at most) and profile vector."""
        s = self.s
        if not history:
            return Recommendation([], None)
        ref = max(i.at for i in history)
        known = self.store.retrieve(ITEMS, sorted({i.item_id for i in history}), with_vectors=True)
        vectors = {k: p.vector for k, p in known.items() if p.vector is not None}
        profile = profile_vector(
            history, vectors, self.behaviour_weights, s.profile_half_life_hours
        )
        prices = {k: p.payload.get("price") for k, p in known.items()}
        exclude = recently_purchased(history, ref, s.rank_exclude_purchased_days)

        ids: list[str] = []
        if profile is not None:
            query = SearchQuery(profile, s.rank_candidates, Where(exclude_keys=frozenset(exclude)))
            ids += [h.key for h in self.store.search(ITEMS, [query])[0]]
        recent = recent_items(history, s.cooccurrence_window)
        collaborative: dict[str, float] = defaultdict(float)
        for point in self.store.retrieve(ITEM_STATS, recent).values():
            co = cooccurrence_at(point.payload, ref, s.popularity_half_life_hours)
            for other, weight in co.items():
                collaborative[other] += weight
        ids += sorted(collaborative, key=lambda k: (-collaborative[k], k))[: s.rank_candidates]
        popular = self.store.top_by(ITEM_STATS, "pop_key", s.rank_candidates)
        ids += [p.key for p in popular if float(p.payload.get("pop") or 0.0) > 0.0]

        unique = list(dict.fromkeys(ids))
        items = self.store.retrieve(ITEMS, unique, with_vectors=True)  # deleted items drop out
        stats = self.store.retrieve(ITEM_STATS, unique)
        candidates = [
            Candidate(
                item_id=key,
                vector=items[key].vector,
                popularity=popularity_at(
                    stats[key].payload if key in stats else None, ref, s.popularity_half_life_hours
                ),
                collaborative=collaborative.get(key, 0.0),
                price=items[key].payload.get("price"),
                in_stock=bool(items[key].payload.get("in_stock", True)),
            )
            for key in unique
            if key in items
        ]
        ranked = rank(
            profile,
            candidates,
            self.weights,
            n=s.recommendations_n,
            exclude=exclude,
            price_preference=price_preference(history, prices),
            price_sigma=s.rank_price_sigma,
            mmr_lambda=s.rank_mmr_lambda,
        )
        return Recommendation(ranked, profile)
