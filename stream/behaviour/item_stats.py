"""The item-stats consumer: item activities (internal topic, keyed by item id) -> ``item_stats``.

Because the internal topic is keyed by item id, each item's statistics have exactly one writer
at a time, whichever instance owns its partition: no global state in any process's memory and
no lost updates between instances. Each activity names the input partition and offset it came
from; the stats keep the last offset applied per input partition, so an activity published twice
(a redone behaviour batch) counts once. Writes happen before the offsets are committed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog

from schemas.activity import ItemActivity, parse_activity
from schemas.errors import InvalidEvent
from stream.collections import ITEM_STATS, ensure_collections
from stream.kafka.dlq import DeadLetter, Message, dead_letter, split_batch
from stream.kafka.topics import item_stats_topics
from stream.loop import BatchConsumer, BatchResult, Output
from stream.ranking.stats import (
    NO_POPULARITY,
    DamagedStats,
    fold_activities,
    popularity_key,
    stored_stats,
)
from stream.settings import Settings
from stream.store import StoredPoint, VectorStore

log = structlog.get_logger(__name__)

_PLACEHOLDER = np.ones(1, dtype=np.float32)


def fold_item_activities(
    stats: Mapping[str, Any] | None,
    activities: Iterable[ItemActivity],
    half_life_hours: float,
    max_co: int,
) -> tuple[dict[str, Any] | None, int]:
    """One item's stats payload after ``activities`` (with ``pop_key``) and how many applied.

    The payload is None when none applied (all replays): there is nothing to write. It is the
    stored form (:func:`stored_stats`), as :func:`apply_activity` one activity at a time gives it
    (:func:`fold_activities`).
    """
    current, applied = fold_activities(stats, activities, half_life_hours, max_co)
    if current is None:
        return None, applied
    key = popularity_key(current, half_life_hours)
    pop_key = key if key is not None else NO_POPULARITY
    return stored_stats({**current, "pop_key": pop_key}), applied


@dataclass(frozen=True)
class ActivityReceived:
    activity: ItemActivity


class ItemStatsProcessor:
    def __init__(self, settings: Settings, store: VectorStore, dim: int, lexical: int = 0) -> None:
        self.settings = settings
        self.store = store
        ensure_collections(store, dim, lexical)

    def receive(self, msg: Message) -> tuple[ActivityReceived | DeadLetter, int]:
        """The activity, or a dead letter: nothing a message holds escapes (a poison pill on
        the internal topic would otherwise stop the consumer at the same offset, for good)."""
        try:
            return ActivityReceived(parse_activity(msg.key(), msg.value())), 1
        except InvalidEvent as exc:
            return dead_letter(msg, exc.reason, exc.detail), 1

    def process(self, batch: list[ActivityReceived | DeadLetter]) -> BatchResult[None]:
        started = time.perf_counter()
        s = self.settings
        dead, by_item = split_batch(batch, lambda e: e.activity.item_id)
        stored = self.store.retrieve(ITEM_STATS, list(by_item))
        points = []
        applied = 0
        for item_id, received in by_item.items():
            stats = stored[item_id].payload if item_id in stored else None
            activities = [e.activity for e in received]
            half_life, max_co = s.popularity_half_life_hours, s.cooccurrence_max
            try:
                payload, count = fold_item_activities(stats, activities, half_life, max_co)
            except DamagedStats as exc:
                # read the same way on every retry: start the item afresh (README says what
                # is lost); the write below replaces the record, so this is logged once
                log.warning("item_stats.damaged", item_id=item_id, error=str(exc))
                payload, count = fold_item_activities(None, activities, half_life, max_co)
            applied += count
            if payload is not None:
                points.append(StoredPoint(item_id, payload, _PLACEHOLDER))
        self.store.upsert(ITEM_STATS, points)
        dlq = s.dlq_topic(s.topic_item_activity())
        counts = {"activities": len(batch), "applied": applied, "dead_letters": len(dead)}
        log.info("item_stats.batch", **counts, ms=round((time.perf_counter() - started) * 1000, 1))
        return BatchResult(
            outputs=[Output(dlq, d.key, d.value, d.headers()) for d in dead], counts=counts
        )

    def close(self) -> None:
        """Nothing to release."""

    def confirm(self, result: BatchResult[None]) -> None:
        """Nothing to record: the stats were written in :meth:`process`."""


class ItemStatsConsumer(BatchConsumer[ActivityReceived | DeadLetter, None]):
    def __init__(self, settings: Settings, processor: ItemStatsProcessor) -> None:
        topic = settings.topic_item_activity()
        topics = item_stats_topics(settings)
        # a behaviour batch of 256 events makes ~2,000 activities: batches of the behaviour
        # size would read and rewrite a popular item's statistics several times over
        batching = settings.model_copy(update={"batch_max_items": settings.stats_batch_max_items})
        super().__init__(batching, processor, topic, settings.stats_group(), topics)
