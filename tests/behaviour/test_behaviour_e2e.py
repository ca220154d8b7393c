"""Shopper behaviour end to end, on the real embedded broker, store and model: user.events in,
users.recommendations out, checked against an independent reference computation."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import reference
from kit import (
    RunningConsumer,
    RunningConsumers,
    behaviour_consumers,
    delete_event,
    event_bytes,
    final_recommendations,
    publish,
    upsert_event,
)

from encoders import Encoder
from recstream_tools.sample_behaviour import sample_behaviour
from recstream_tools.sample_catalog import sample_items
from stream.behaviour.processor import BehaviourProcessor
from stream.settings import Settings
from stream.store.edge import EdgeStore

pytestmark = pytest.mark.integration


def _wait_progress(running: RunningConsumers, events: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while running.consumers[0].progress.events < events:
        assert running.error is None, running.error
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.1)


def test_recommendations_match_an_independent_reference(
    make_settings: Callable[..., Settings], encoder: Encoder
) -> None:
    """For a few hundred shoppers, each final recommendation list on users.recommendations
    equals the reference computation from the same events (profile maths, popularity and
    co-occurrence, exclusions, blend), through a graceful restart and a crash mid-stream.
    Already-bought, out-of-stock and deleted items never appear; components add up to the
    score; shoppers without a usable history get popular items."""
    settings = make_settings(
        weight_view=0.0,  # the final per-shopper trigger events are views: they change nothing
        rank_candidates=500,
        cooccurrence_max=1_000,
        history_max=100,
        batch_max_items=128,
    )
    rng = random.Random(5)
    items = sample_items(150, seed=31)
    for item in rng.sample(items, 15):
        item["in_stock"] = False
    # the last three items get no behaviour: cold-start shoppers view them
    behaviour = sample_behaviour(items[:-3], users=220, seed=32)
    store = EdgeStore(settings.qdrant_path)
    try:
        publish(
            settings,
            settings.topic_items,
            (event_bytes(upsert_event(i, 1, "item.created")) for i in items),
        )
        with RunningConsumer(settings, encoder, store) as catalog:
            catalog.wait_caught_up()

            # behaviour, with a graceful restart and a crash between publish and record
            publish(settings, settings.topic_user_events, map(event_bytes, behaviour))
            with RunningConsumers(behaviour_consumers(settings, store, encoder.dim)) as first:
                _wait_progress(first, 300)
            crashing = behaviour_consumers(settings, store, encoder.dim)
            processor = crashing[0].processor
            assert isinstance(processor, BehaviourProcessor)
            original = processor.confirm
            calls = {"n": 0}

            def confirm_then_die(result: Any) -> None:
                calls["n"] += 1
                if calls["n"] == 2:
                    raise RuntimeError("simulated crash between publish and record")
                original(result)

            processor.confirm = confirm_then_die  # type: ignore[method-assign]
            broken = RunningConsumers(crashing[:1])
            broken.start()
            broken.threads[0].join(timeout=240)
            assert isinstance(broken.error, RuntimeError)
            with RunningConsumers(behaviour_consumers(settings, store, encoder.dim)) as final:
                final.wait_caught_up()

                # delete items some shoppers touched, then one weightless view per shopper
                touched = sorted({e["item_id"] for e in behaviour})
                deleted = set(rng.sample(touched, 5))
                publish(
                    settings,
                    settings.topic_items,
                    [event_bytes(delete_event(i, 2)) for i in sorted(deleted)],
                )
                catalog.wait_caught_up()
                live = [i for i in items if i["item_id"] not in deleted]
                end = max(reference.parse(e).at for e in behaviour) + timedelta(days=1)
                quiet = [i["item_id"] for i in items[-3:]]
                users = [*sorted({e["user_id"] for e in behaviour}), "u-cold-1", "u-cold-2"]
                triggers = reference.trigger_events(users, live, quiet, end, rng)
                publish(settings, settings.topic_user_events, map(event_bytes, triggers))
                final.wait_caught_up()

        vectors = reference.ranked_vectors(store, settings)
    finally:
        store.close()

    assert set(vectors) == {i["item_id"] for i in items} - deleted
    got = final_recommendations(settings)
    assert set(got) == set(users)
    reference.assert_recommendations(settings, got, behaviour, triggers, items, vectors, deleted)
    for cold in ("u-cold-1", "u-cold-2"):
        assert all(
            h["components"]["semantic"] == 0 and h["components"]["collaborative"] == 0
            for h in got[cold]
        )
        assert all(h["components"]["popularity"] > 0 for h in got[cold])
