"""Shopper events far apart in time, on the real embedded broker, store and model: events decades
older than the item statistics they meet, and events dated ahead of the consumer's clock."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import reference
from kit import (
    RunningConsumer,
    RunningConsumers,
    behaviour_consumers,
    created,
    event_bytes,
    final_recommendations,
    publish,
)

from encoders import Encoder
from recstream_tools.sample_catalog import sample_items
from stream.behaviour.processor import BehaviourProcessor, UserReceived
from stream.collections import USERS
from stream.kafka.dlq import DeadLetter, LocalMessage
from stream.kafka.inspect import read_topic
from stream.ranking.profile import history_from_payload
from stream.settings import Settings
from stream.store.edge import EdgeStore

pytestmark = pytest.mark.integration

NOW_ISH = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def _event(user: str, n: int, item: str, kind: str, at: datetime) -> dict[str, Any]:
    return {
        "type": kind,
        "event_id": f"{user}-{n}",
        "occurred_at": at.isoformat().replace("+00:00", "Z"),
        "user_id": user,
        "item_id": item,
    }


def test_events_decades_apart_keep_the_consumer_running_and_the_lists_exact(
    make_settings: Callable[..., Settings],
    encoder: Encoder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a 1-hour popularity half-life, a shopper whose events are from 1990, 2005 and 2010
    meets item statistics of 2026 (decay factors of 2^140,000 and more), and sends one event
    dated 9999: the consumers keep running, the 9999 event is a ``future_event`` dead letter
    (not in the history), and every shopper's last list equals the reference, the old shopper's
    with popularity and co-occurrence taken out by one common factor (every share the same)."""
    settings = make_settings(
        weight_view=0.0,  # the final trigger events are views: they change nothing
        popularity_half_life_hours=1.0,
        profile_half_life_hours=2.0,  # not the popularity's: the reference's decay tells them apart
        rank_candidates=100,
        # a century: 2026 is never ahead of the clock, 9999 always is, whenever this runs
        history_max_future_s=100 * 365 * 86_400.0,
    )
    rng = random.Random(17)
    items = sample_items(30, seed=61)
    ids = [i["item_id"] for i in items]
    behaviour = []
    for u in range(6):
        for n in range(4):
            at = NOW_ISH.replace(hour=8 + u, minute=10 * n)
            kind = rng.choice(["click", "add_to_cart", "purchase"])
            item = ids[u % 3] if n == 0 else rng.choice(ids[:20])  # u-old's items too
            behaviour.append(_event(f"u-{u}", n, item, kind, at))
    old = [(1990, "purchase"), (2005, "add_to_cart"), (2010, "click")]
    for n, (year, kind) in enumerate(old):
        behaviour.append(_event("u-old", n, ids[n], kind, datetime(year, 1, 1, tzinfo=UTC)))
    future = _event("u-old", 9, ids[3], "purchase", datetime(9999, 6, 1, tzinfo=UTC))
    triggers = [
        _event(f"u-{u}", 99, rng.choice(ids[:20]), "view", datetime(2026, 11, 21, tzinfo=UTC))
        for u in range(6)
    ]
    triggers.append(_event("u-old", 99, ids[0], "view", datetime(2010, 1, 2, tzinfo=UTC)))
    store = EdgeStore(settings.qdrant_path)
    try:
        publish(settings, settings.topic_items, created(items))
        with RunningConsumer(settings, encoder, store) as catalog:
            catalog.wait_caught_up()
        with RunningConsumers(behaviour_consumers(settings, store, encoder.dim)) as running:
            publish(settings, settings.topic_user_events, map(event_bytes, [*behaviour, future]))
            running.wait_caught_up()  # the item statistics now hold 2026
            publish(settings, settings.topic_user_events, map(event_bytes, triggers))
            running.wait_caught_up()
        assert running.errors == [], running.errors
        vectors = reference.ranked_vectors(store, settings)
        stored = store.retrieve(USERS, ["u-old"])["u-old"].payload
    finally:
        store.close()

    dead = read_topic(settings, settings.dlq_topic(settings.topic_user_events))
    assert [(r.value, r.headers["recstream.error"]) for r in dead] == [
        (event_bytes(future)[1], b"future_event")
    ]
    assert [i.event_id for i in history_from_payload(stored["history"])] == [
        "u-old-0",
        "u-old-1",
        "u-old-2",
        "u-old-99",
    ]

    got = final_recommendations(settings)
    assert set(got) == {e["user_id"] for e in triggers}
    cat = reference.Catalogue(
        vectors=vectors,
        prices={i["item_id"]: i.get("price") for i in items},
        in_stock={i["item_id"]: i.get("in_stock", True) for i in items},
    )
    everyone = [reference.parse(e) for e in behaviour]
    latest = max(e.at for e in everyone)
    halved = reference._halved

    for user in sorted(got):
        history = [reference.parse(e) for e in [*behaviour, *triggers] if e["user_id"] == user]
        # popularity and co-occurrence counted at the latest event instead of the shopper's
        # time: one factor for all, which no share sees, and no overflow (2^140,000 is none)
        shift = reference._hours(max(e.at for e in history), latest)

        def scaled(hours: float, half_life: float, shift: float = shift) -> float:
            if half_life == settings.popularity_half_life_hours:
                hours -= shift
            return float(halved(hours, half_life))

        monkeypatch.setattr(reference, "_halved", scaled)
        want = reference.recommend(history, everyone, cat, settings)
        monkeypatch.setattr(reference, "_halved", halved)
        have = got[user]
        assert len(have) == len(want) == settings.recommendations_n, user
        for position, (h, (w_id, w_score, w_comps)) in enumerate(zip(have, want, strict=True)):
            assert h["score"] == pytest.approx(w_score, abs=2e-6), (user, position)
            if h["item_id"] == w_id:
                assert h["components"] == pytest.approx(w_comps, abs=2e-6), (user, position)
            else:  # only a tie may swap places
                tied = [s for i, s, _ in want if i == h["item_id"]]
                assert tied and tied[0] == pytest.approx(w_score, abs=2e-6), (user, position)
    assert any(h["components"]["collaborative"] > 0 for h in got["u-old"])


def test_an_event_further_ahead_of_the_clock_than_the_setting_is_a_dead_letter(
    make_settings: Callable[..., Settings],
) -> None:
    """With the default one day, an event an hour ahead of now is taken and one two days ahead
    is a ``future_event`` dead letter naming how far ahead it was; three days allowed take it."""
    now = datetime.now(UTC)

    def received(settings: Settings, ahead: timedelta) -> object:
        store = EdgeStore(settings.qdrant_path)
        try:
            processor = BehaviourProcessor(settings, store, 8)
            _, value = event_bytes(_event("u-1", 1, "sku-1", "click", now + ahead))
            message = LocalMessage(0, b"u-1", value, settings.topic_user_events)
            return processor.receive(message)[0]
        finally:
            store.close()

    default = make_settings(history_max_future_s=Settings().history_max_future_s)
    assert default.history_max_future_s == 86_400
    assert isinstance(received(default, timedelta(hours=1)), UserReceived)
    dead = received(default, timedelta(days=2))
    assert isinstance(dead, DeadLetter) and dead.reason == "future_event"
    assert "ahead" in dead.detail
    roomy = make_settings(history_max_future_s=3 * 86_400.0)
    assert isinstance(received(roomy, timedelta(days=2)), UserReceived)
