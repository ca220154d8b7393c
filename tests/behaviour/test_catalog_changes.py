"""Catalog changes reach shoppers' next lists at once, on the real embedded broker, store and
model: the behaviour consumer ranks from an in-memory copy of the items, which must take in what
the catalog consumer wrote since the last batch, not a refresh interval later."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from kit import (
    T0,
    RunningConsumer,
    RunningConsumers,
    behaviour_consumers,
    event_bytes,
    final_recommendations,
    publish,
    upsert_event,
)

from encoders import Encoder
from encoders.bert import model_dimension
from stream.collections import ITEMS, USERS
from stream.kafka.inspect import read_topic
from stream.settings import Settings
from stream.store.edge import EdgeStore

pytestmark = pytest.mark.integration


def _item(n: int, price: float) -> dict[str, Any]:
    return {"item_id": f"mug-{n}", "title": f"ceramic coffee mug model {n}", "price": price}


def _view(user: str, item: str, n: int) -> dict[str, Any]:
    return {
        "type": "purchase" if n == 0 else "view",
        "event_id": f"{user}-{n}",
        "occurred_at": (T0 + timedelta(days=1, minutes=n)).isoformat().replace("+00:00", "Z"),
        "user_id": user,
        "item_id": item,
        "quantity": 1,
        "price": 10.0,
    }


def _latest(settings: Settings, user: str, count: int, timeout_s: float = 60.0) -> list[Any]:
    """The shopper's list once ``count`` lists of theirs were published."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        records = read_topic(settings, settings.topic_recommendations)
        if sum(1 for r in records if r.key == user.encode()) >= count:
            return final_recommendations(settings)[user]
        time.sleep(0.2)
    raise AssertionError(f"{user}: fewer than {count} lists")


def test_stock_price_and_text_changes_reach_the_next_list(
    make_settings: Callable[..., Settings], encoder: Encoder
) -> None:
    """A shopper's list, then the catalog consumer takes an item out of stock, changes another's
    price and re-encodes a third under new text; the shopper's next event gets a list without the
    first, the second priced as the Gaussian of the new price says, the third scored from its new
    vector. The copy is never read again whole (refresh one hour away)."""
    settings = make_settings(rank_index_refresh_s=3_600.0, rank_candidates=50, rank_price_sigma=0.5)
    items = [_item(n, 10.0) for n in range(12)]
    store = EdgeStore(settings.qdrant_path)
    try:
        publish(settings, settings.topic_items, [event_bytes(upsert_event(i, 1)) for i in items])
        with RunningConsumer(settings, encoder, store) as catalog:
            catalog.wait_caught_up()
            with RunningConsumers(behaviour_consumers(settings, store, encoder.dim)) as running:
                publish(
                    settings, settings.topic_user_events, [event_bytes(_view("u1", "mug-0", 0))]
                )
                running.wait_caught_up()
                before = {h["item_id"]: h for h in _latest(settings, "u1", 1)}
                assert {"mug-1", "mug-2", "mug-3"} <= set(before)
                assert before["mug-2"]["components"]["price"] == pytest.approx(1.0, abs=1e-6)

                changed = [
                    {**items[1], "in_stock": False},
                    {**items[2], "price": 20.0},
                    {**items[3], "title": "garden hose reel with wall bracket"},
                ]
                publish(
                    settings,
                    settings.topic_items,
                    [event_bytes(upsert_event(i, 2)) for i in changed],
                )
                catalog.wait_caught_up()
                publish(
                    settings, settings.topic_user_events, [event_bytes(_view("u1", "mug-5", 1))]
                )
                running.wait_caught_up()
                after = {h["item_id"]: h for h in _latest(settings, "u1", 2)}
                profile = store.retrieve(USERS, ["u1"], with_vectors=True)["u1"].vector
                hose = store.retrieve(ITEMS, ["mug-3"], with_vectors=True)["mug-3"].vector
    finally:
        store.close()

    assert "mug-1" not in after
    # the price component: exp(-(ln 20 - ln 10)^2 / (2 sigma^2)), the shopper paid 10
    want = math.exp(-((math.log(20.0) - math.log(10.0)) ** 2) / (2 * 0.5**2))
    assert after["mug-2"]["components"]["price"] == pytest.approx(want, abs=1e-6)
    # the re-encoded item scores from its new vector: the cosine with the stored profile, on
    # the model's part of the hybrid vectors (RECSTREAM_RANK_LEXICAL off; the profile's lexical
    # part is zeros)
    assert profile is not None and hose is not None
    width = model_dimension(settings.model)
    profile, hose = profile[:width], hose[:width]
    cosine = float(np.dot(profile, hose) / np.linalg.norm(profile) / np.linalg.norm(hose))
    assert after["mug-3"]["components"]["semantic"] == pytest.approx(max(cosine, 0.0), abs=1e-5)
    assert after["mug-3"]["components"]["semantic"] < before["mug-3"]["components"]["semantic"]
