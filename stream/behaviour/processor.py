"""One batch of shopper behaviour: histories, item activities, recommendations.

Order of effects, for crash safety without a transaction:

1. in memory: merge each shopper's new events into the history read from the store, derive the
   item activities of the new interactions and the shopper's fresh recommendations;
2. publish the activities (internal topic keyed by item id, in offset order per input
   partition), the recommendations and the dead letters; the consumer loop waits until the
   broker acknowledged all of them;
3. :meth:`BehaviourProcessor.confirm` writes the histories (and, per source partition, the last
   offset applied) to the ``users`` collection; then the loop commits the offsets.

A crash before 3 redoes the batch: the same activities are published again and the item-stats
consumer drops them by their input offset. A crash after 3 finds the events already in the
histories: nothing is added, nothing is published twice.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import structlog

from schemas.behaviour import UserEvent, parse_behaviour_event
from schemas.errors import FUTURE_EVENT, TOO_LARGE, InvalidEvent, require_key
from schemas.outputs import Recommendations, RecommendedItem, recommendations_json
from schemas.source import partition_of, source_of
from stream.collections import USERS, ensure_collections
from stream.kafka.dlq import DeadLetter, Message, dead_letter, split_batch
from stream.kafka.topics import behaviour_topics
from stream.loop import BatchConsumer, BatchResult, Output
from stream.ranking.blend import Ranked
from stream.ranking.profile import (
    Interaction,
    history_from_payload,
    history_to_payload,
    merge_history,
)
from stream.ranking.recommender import Recommender
from stream.ranking.stats import activities_for
from stream.settings import Settings
from stream.store import StoredPoint, VectorStore, Where

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class UserReceived:
    event: UserEvent
    topic: str
    partition: int
    offset: int

    @property
    def source(self) -> str:
        return source_of(self.topic, self.partition, self.offset)


def recommendations_message(
    user_id: str, ranked: Sequence[Ranked], generated_at: datetime
) -> Recommendations:
    """A ``users.recommendations`` message: the list, scores and components rounded to 6 places."""
    return Recommendations(
        user_id=user_id,
        items=[
            RecommendedItem(item_id=i, score=s, components=parts)
            for i, s, parts in _rounded(ranked)
        ],
        generated_at=generated_at,
    )


def recommendations_value(user_id: str, ranked: Sequence[Ranked], generated_at: datetime) -> bytes:
    """The JSON value of :func:`recommendations_message`, written without building it."""
    return recommendations_json(user_id, _rounded(ranked), generated_at)


def _rounded(ranked: Sequence[Ranked]) -> list[tuple[str, float, dict[str, float]]]:
    values = iter(rounded_6([v for r in ranked for v in (r.score, *r.components.values())]))
    return [(r.item_id, next(values), {k: next(values) for k in r.components}) for r in ranked]


_EXACT_BELOW = 1e3
"""Below this magnitude a float times 10^6 is within 2.3e-7 of its exact product."""


def rounded_6(values: Sequence[float]) -> list[float]:
    """``[round(v, 6) for v in values]``, the same floats, a vector at a time (Python's round to
    6 places costs ~1 us a value: a batch's lists hold ~30,000). rint(v * 10^6) / 10^6 is
    Python's answer unless v * 10^6 lay so near a half that the product's rounding could pick
    the other integer (or v is large or not finite): those are rounded by Python."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(all="ignore"):  # infinities and NaN: rounded by Python below
        scaled = v * 1e6
        out = np.rint(scaled) / 1e6
        unsure = ~(np.abs(v) < _EXACT_BELOW) | (np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6)
    result: list[float] = out.tolist()
    for k in np.flatnonzero(unsure).tolist():
        result[k] = round(float(v[k]), 6)
    return result


OWED = "recs_pending"
"""Shoppers' payload field: their recommendations are to be published again without an event
(set by ``recstream migrate`` for every shopper of a generation switched to)."""


class BehaviourProcessor:
    """Turns ``user.events`` into item activities, recommendations and stored histories."""

    def __init__(self, settings: Settings, store: VectorStore, dim: int, lexical: int = 0) -> None:
        """``dim``: the length of the items' vectors, of which the last ``lexical`` are a
        hybrid vector's lexical part (:func:`stream.collections.ensure_collections`)."""
        self.settings = settings
        self.store = store
        self.dim = dim
        ensure_collections(store, dim, lexical)
        self.recommender = Recommender(settings, store)
        self._owed = dict.fromkeys(store.keys_where(USERS, Where(flag=(OWED, True))))
        """Shoppers owed their recommendations, in the store's order; a batch takes a share."""
        self._taken: list[str] = []

    def owes_work(self) -> bool:
        """Recommendations are owed from before this process (:class:`stream.loop.Owing`)."""
        return bool(self._owed)

    def receive(self, msg: Message) -> tuple[UserReceived | DeadLetter, int]:
        value = msg.value()
        if value is not None and len(value) > self.settings.max_message_bytes:
            limit = self.settings.max_message_bytes
            return dead_letter(msg, TOO_LARGE, f"{len(value)} bytes > {limit}"), 1
        try:
            event = parse_behaviour_event(msg.key(), value)
            require_key(msg.key(), "user_id")
        except InvalidEvent as exc:
            return dead_letter(msg, exc.reason, exc.detail), 1
        # a subtraction, not now + limit: no overflow near year 9999, whatever the limit
        ahead = (event.occurred_at - datetime.now(UTC)).total_seconds()
        most = self.settings.history_max_future_s
        if ahead > most:
            return dead_letter(msg, FUTURE_EVENT, f"occurred_at {ahead:.0f} s ahead > {most:g}"), 1
        return UserReceived(event, msg.topic() or "", msg.partition() or 0, msg.offset() or 0), 1

    def process(self, batch: list[UserReceived | DeadLetter]) -> BatchResult[list[StoredPoint]]:
        started = time.perf_counter()
        s = self.settings
        dead, by_user = split_batch(batch, lambda e: e.event.user_id)
        stored = self.store.retrieve(USERS, list(by_user))
        outputs: list[Output] = []
        item_outputs: list[tuple[tuple[int, int], Output]] = []
        updates: dict[str, StoredPoint] = {}
        now = datetime.now(UTC)
        changed: dict[str, tuple[list[Interaction], dict[str, int]]] = {}
        for user_id in by_user:
            payload = stored[user_id].payload if user_id in stored else {}
            upto: dict[str, int] = dict(payload.get("upto") or {})
            fresh = [
                r
                for r in by_user[user_id]
                if r.offset > upto.get(partition_of(r.topic, r.partition), -1)
            ]
            history = history_from_payload(payload.get("history"))
            merged, added = merge_history(
                history, [Interaction.of(r.event) for r in fresh], s.history_max
            )
            for r in fresh:
                tp = partition_of(r.topic, r.partition)
                upto[tp] = max(upto.get(tp, -1), r.offset)
            if not added:
                continue
            changed[user_id] = (merged, upto)
            received = {r.event.event_id: r for r in fresh}
            for interaction in added:
                r = received[interaction.event_id]
                for activity in activities_for(
                    interaction, merged, s.behaviour_weights(), s.cooccurrence_window, r.source
                ):
                    item_outputs.append(
                        (
                            (r.partition, r.offset),
                            Output(
                                s.topic_item_activity(),
                                activity.item_id.encode(),
                                activity.to_json(),
                            ),
                        )
                    )
        # in offset order per input partition: the item stats keep a watermark per partition
        item_outputs.sort(key=lambda pair: pair[0])
        outputs.extend(output for _, output in item_outputs)
        activities = len(item_outputs)
        self._taken = [
            u for u in itertools.islice(self._owed, s.batch_max_items) if u not in by_user
        ]
        owed = {
            k: history_from_payload(p.payload.get("history"))
            for k, p in self.store.retrieve(USERS, self._taken, fields=("history",)).items()
        }
        recommendations = self.recommender.recommend_many(
            {**owed, **{user_id: merged for user_id, (merged, _) in changed.items()}}
        )
        for user_id in owed:  # their histories, profiles and offsets are stored already
            ranked = recommendations[user_id].ranked
            outputs.append(
                Output(
                    s.topic_recommendations,
                    user_id.encode(),
                    recommendations_value(user_id, ranked, now),
                )
            )
        for user_id, (merged, upto) in changed.items():
            rec = recommendations[user_id]
            value = recommendations_value(user_id, rec.ranked, now)
            outputs.append(Output(s.topic_recommendations, user_id.encode(), value))
            updates[user_id] = StoredPoint(
                user_id,
                {
                    "user_id": user_id,
                    "history": history_to_payload(merged),
                    "upto": upto,
                    "last_at": max(i.at for i in merged).isoformat(),
                    "has_profile": rec.profile is not None,
                },
                stored_profile(rec.profile, self.dim),
            )
        dlq = s.dlq_topic(s.topic_user_events)
        outputs.extend(Output(dlq, d.key, d.value, d.headers()) for d in dead)
        counts = {
            "events": len(batch),
            "users": len(updates),
            "activities": activities,
            "recommendations": len(updates) + len(owed),
            "dead_letters": len(dead),
        }
        log.info("behaviour.batch", **counts, ms=round((time.perf_counter() - started) * 1000, 1))
        return BatchResult(outputs=outputs, counts=counts, confirm=list(updates.values()))

    def close(self) -> None:
        self.recommender.close()

    def confirm(self, result: BatchResult[list[StoredPoint]]) -> None:
        """Record the histories once their activities and recommendations were delivered."""
        points = result.confirm or []
        self.store.upsert(USERS, points)
        if self._taken:
            self.store.set_payload(USERS, {u: {OWED: False} for u in self._taken})
        for user_id in [*self._taken, *(p.key for p in points)]:  # all published afresh
            self._owed.pop(user_id, None)
        self._taken = []


class BehaviourConsumer(BatchConsumer[UserReceived | DeadLetter, list[StoredPoint]]):
    """``user.events`` in; recommendations, item activities and dead letters out."""

    def __init__(self, settings: Settings, processor: BehaviourProcessor) -> None:
        topics = behaviour_topics(settings)
        group = settings.behaviour_group()
        wait = {"batch_max_wait_ms": settings.behaviour_batch_max_wait_ms}
        batching = settings.model_copy(update=wait)
        super().__init__(batching, processor, settings.topic_user_events, group, topics)


def stored_profile(profile: npt.NDArray[np.float32] | None, dim: int) -> npt.NDArray[np.float32]:
    """A profile as the users collection holds it: its vectors are as long as the items', so a
    profile of their model's part only is padded with zeros (its cosine with an item is then
    the model part's, scaled by one factor); a shopper without a usable profile gets a
    placeholder (a cosine needs a norm)."""
    if profile is None:
        placeholder = np.zeros(dim, dtype=np.float32)
        placeholder[0] = 1.0
        return placeholder
    if len(profile) >= dim:
        return profile
    return np.concatenate([profile, np.zeros(dim - len(profile), dtype=np.float32)])
