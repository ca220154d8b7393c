"""What the consumers would hold at a cutoff, built offline: a store with the catalogue's vectors,
the item statistics of the history and the learned model, and the lists the Recommender makes.

Everything goes through the consumers' own code: item statistics through ``activities_for`` and
the item-stats fold, the model through :func:`train_model` and :func:`write_model`, each list
from :class:`Recommender`. Nothing after the cutoff reaches the store.

Folding item statistics is CPU-bound Python and runs in ``workers`` processes (items are
independent, as in the item-stats consumer).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from multiprocessing import get_context
from typing import Any

import numpy as np

from encoders.text import content_hash
from recstream_tools.evaluation.interactions import Item
from schemas.activity import ItemActivity
from schemas.source import source_position
from stream.behaviour.item_stats import fold_item_activities
from stream.collections import ITEM_STATS, ITEMS, ensure_collections
from stream.ranking.blend import Scored
from stream.ranking.learned import train_model, write_model
from stream.ranking.model import ItemModel
from stream.ranking.profile import Interaction
from stream.ranking.recommender import Recommender
from stream.ranking.stats import activities_for
from stream.settings import Settings
from stream.store import StoredPoint, VectorStore
from stream.store.base import Vector

Histories = Mapping[str, Sequence[Interaction]]

_CHUNK = 512
_USERS_PER_BATCH = 256
_PLACEHOLDER = np.ones(1, dtype=np.float32)


def item_points(
    items: Sequence[Item], vectors: Mapping[str, Vector], model: str
) -> list[StoredPoint]:
    """The items as the catalog consumer stores them: vectors and the fields the Recommender
    reads."""
    return [
        StoredPoint(
            i.item_id,
            {
                "item_id": i.item_id,
                "title": i.title,
                "price": i.price,
                "in_stock": True,
                "model": model,
                "content_hash": content_hash(i.title),
            },
            vectors[i.item_id],
        )
        for i in items
    ]


def _pool(workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: the parent holds torch's and the store engine's threads
    return ProcessPoolExecutor(workers, mp_context=get_context("spawn"))


def store_item_stats(store: VectorStore, history: Histories, s: Settings, workers: int) -> int:
    """Replay the history through the item-stats path; the number of activities."""
    if workers == 1:
        parts = [_fold_shard(history, s, 0, 1)]
    else:
        with _pool(workers) as pool:
            jobs = [pool.submit(_fold_shard, history, s, k, workers) for k in range(workers)]
            parts = [job.result() for job in jobs]
    points = [
        StoredPoint(item_id, payload, _PLACEHOLDER)
        for payloads, _ in parts
        for item_id, payload in sorted(payloads.items())
    ]
    for start in range(0, len(points), _CHUNK):
        store.upsert(ITEM_STATS, points[start : start + _CHUNK])
    return sum(count for _, count in parts)


def _fold_shard(
    history: Histories, s: Settings, shard: int, shards: int
) -> tuple[dict[str, dict[str, Any]], int]:
    """The stats payloads of one shard of the items, and the number of their activities.

    Each interaction pairs with the shopper's earlier ones as the behaviour consumer sees them:
    within the bounded history (``history_max``), one event at a time.
    """
    weights = s.behaviour_weights()
    by_item: dict[str, list[ItemActivity]] = {}
    for user in sorted(history):
        events = history[user]
        for k, interaction in enumerate(events):
            previous = events[max(0, k + 1 - s.history_max) : k + 1]
            # each shopper a partition of their own, events in order: nothing is a replay
            source = f"offline/{user}/{k}"
            for activity in activities_for(
                interaction, previous, weights, s.cooccurrence_window, source
            ):
                if zlib.crc32(activity.item_id.encode()) % shards == shard:
                    by_item.setdefault(activity.item_id, []).append(activity)
    payloads: dict[str, dict[str, Any]] = {}
    count = 0
    for item_id, activities in by_item.items():
        activities.sort(key=lambda a: (a.at, source_position(a.source)))
        payload, _ = fold_item_activities(
            None, activities, s.popularity_half_life_hours, s.cooccurrence_max
        )
        count += len(activities)
        if payload is not None:
            payloads[item_id] = payload
    return payloads, count


def build(
    store: VectorStore,
    items: Sequence[StoredPoint],
    history: Histories,
    s: Settings,
    workers: int,
) -> tuple[int, ItemModel]:
    """Fill an empty store as the consumers would have at the history's end: the items, the
    activities folded into item statistics, the model trained and written."""
    vector = items[0].vector if items else None
    ensure_collections(store, len(vector) if vector is not None else 1)
    for start in range(0, len(items), _CHUNK):
        store.upsert(ITEMS, items[start : start + _CHUNK])
    activities = store_item_stats(store, history, s, workers)
    return activities, retrain(store, history, s)


def retrain(store: VectorStore, history: Histories, s: Settings) -> ItemModel:
    """Train the model of ``history`` with ``s`` and write it over the stored one."""
    model = train_model(s, history)
    write_model(store, model, datetime.now(UTC))
    return model


def offline(s: Settings) -> Settings:
    """``s`` for offline use: the tuned values a store may hold are not read."""
    return s.model_copy(update={"rank_tuned": False})


def recommend(
    store: VectorStore, s: Settings, history: Histories, users: Sequence[str]
) -> dict[str, list[str]]:
    """Each user's list (item ids), in batches as the behaviour consumer makes them."""
    recommender = Recommender(offline(s), store)
    out: dict[str, list[str]] = {}
    try:
        for start in range(0, len(users), _USERS_PER_BATCH):
            chunk = users[start : start + _USERS_PER_BATCH]
            lists = recommender.recommend_many({u: history[u] for u in chunk})
            out.update({u: [r.item_id for r in lists[u].ranked] for u in chunk})
    finally:
        recommender.close()
    return out


def score(
    store: VectorStore, s: Settings, history: Histories, users: Sequence[str]
) -> dict[str, Scored]:
    """Each user's eligible candidates and their components, before any weighting."""
    recommender = Recommender(offline(s), store)
    out: dict[str, Scored] = {}
    try:
        for start in range(0, len(users), _USERS_PER_BATCH):
            chunk = users[start : start + _USERS_PER_BATCH]
            scored, _ = recommender.score_many({u: history[u] for u in chunk})
            out.update(scored)
    finally:
        recommender.close()
    return out
