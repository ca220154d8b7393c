"""Shopper behaviour end to end, on the real embedded broker, store and model: user.events in,
users.recommendations out, checked against an independent reference computation."""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
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
    publish,
    upsert_event,
)

from encoders import Encoder
from stream.behaviour.processor import BehaviourProcessor
from stream.collections import ITEMS
from stream.kafka.inspect import latest_by_key, read_topic
from stream.sample_behaviour import sample_behaviour
from stream.sample_catalog import sample_items
from stream.settings import Settings
from stream.store.edge import EdgeStore

pytestmark = pytest.mark.integration


def _final_recommendations(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    latest = latest_by_key(read_topic(settings, settings.topic_recommendations))
    out = {}
    for key, value in latest.items():
        assert key is not None and value is not None
        message = json.loads(value)
        assert message["user_id"] == key.decode()
        out[key.decode()] = message["items"]
    return out


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
                triggers = []
                users = [*sorted({e["user_id"] for e in behaviour}), "u-cold-1", "u-cold-2"]
                for n, user in enumerate(users):
                    target = (
                        rng.choice(quiet)
                        if user.startswith("u-cold")
                        else rng.choice(live)["item_id"]
                    )
                    triggers.append(
                        {
                            "type": "view",
                            "event_id": f"trigger-{n}",
                            "occurred_at": end.isoformat().replace("+00:00", "Z"),
                            "user_id": user,
                            "item_id": target,
                        }
                    )
                publish(settings, settings.topic_user_events, map(event_bytes, triggers))
                final.wait_caught_up()

        vectors = {
            p.key: p.vector for p in store.scroll(ITEMS, with_vectors=True) if p.vector is not None
        }
    finally:
        store.close()

    assert set(vectors) == {i["item_id"] for i in items} - deleted
    cat = reference.Catalogue(
        vectors=vectors,
        prices={i["item_id"]: i.get("price") for i in live},
        in_stock={i["item_id"]: i.get("in_stock", True) for i in live},
    )
    everyone = [reference.parse(e) for e in behaviour]
    by_user: dict[str, list[reference.Event]] = defaultdict(list)
    for e in [*everyone, *map(reference.parse, triggers)]:
        by_user[e.user_id].append(e)
    got = _final_recommendations(settings)
    assert set(got) == set(users)
    bought = {(e.user_id, e.item_id) for e in everyone if e.type == "purchase"}
    out_of_stock = {i["item_id"] for i in items if not i.get("in_stock", True)}
    weights = {
        "semantic": settings.rank_weight_semantic,
        "collaborative": settings.rank_weight_collaborative,
        "popularity": settings.rank_weight_popularity,
        "price": settings.rank_weight_price,
    }
    for user in users:
        have = got[user]
        want = reference.recommend(by_user[user], everyone, cat, settings)
        assert len(have) == len(want) == settings.recommendations_n, user
        for position, (h, (w_id, w_score, w_comps)) in enumerate(zip(have, want, strict=True)):
            assert h["score"] == pytest.approx(w_score, abs=2e-6), (user, position)
            if h["item_id"] != w_id:  # only a tie may swap places
                tied = [s for i, s, _ in want if i == h["item_id"]]
                assert tied and tied[0] == pytest.approx(w_score, abs=2e-6), (user, position)
            else:
                for name, value in w_comps.items():
                    assert h["components"][name] == pytest.approx(value, abs=2e-6), (user, name)
            assert sum(weights[k] * v for k, v in h["components"].items()) == pytest.approx(
                h["score"], abs=1e-5
            )
            assert h["item_id"] not in deleted and h["item_id"] not in out_of_stock
            assert (user, h["item_id"]) not in bought
    for cold in ("u-cold-1", "u-cold-2"):
        assert all(
            h["components"]["semantic"] == 0 and h["components"]["collaborative"] == 0
            for h in got[cold]
        )
        assert all(h["components"]["popularity"] > 0 for h in got[cold])
