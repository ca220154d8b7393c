"""Input messages without a Kafka key are dead letters (``missing_key``), on the catalogue and on
the behaviour topic: an item or a shopper without a key has no fixed partition, so no single
writer. Real broker, real store, real consumers."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from kit import (
    RunningConsumer,
    RunningConsumers,
    behaviour_consumers,
    event_bytes,
    final_lists,
    publish,
    upsert_event,
)

from encoders import Encoder
from recstream_tools.sample_catalog import sample_items
from schemas.errors import MISSING_KEY
from stream.collections import ITEMS, USERS
from stream.kafka.inspect import latest_by_key, read_topic
from stream.settings import Settings
from stream.store.edge import EdgeStore

pytestmark = pytest.mark.integration


def test_unkeyed_catalogue_and_behaviour_events_are_dead_lettered(
    make_settings: Callable[..., Settings], encoder: Encoder
) -> None:
    """A valid item.created and a valid purchase, each published without a key, land in their
    topic's DLQ with reason ``missing_key``, their original bytes and no key; the item is not
    stored, the shopper gets no history; the keyed events around them are processed."""
    settings = make_settings()
    items = sample_items(12, seed=17)
    unkeyed_item = items.pop()
    catalogue: list[tuple[bytes | None, bytes | None]] = [
        event_bytes(upsert_event(i, 1, "item.created")) for i in items
    ]
    unkeyed_item_value = event_bytes(upsert_event(unkeyed_item, 1, "item.created"))[1]
    catalogue.insert(5, (None, unkeyed_item_value))
    purchase = {
        "type": "purchase",
        "event_id": "e-anon",
        "occurred_at": "2026-11-22T10:00:00Z",
        "user_id": "u-anon",
        "item_id": items[0]["item_id"],
    }
    keyed = {**purchase, "event_id": "e-known", "user_id": "u-known"}
    unkeyed_purchase = json.dumps(purchase).encode()
    publish(settings, settings.topic_items, catalogue)
    publish(settings, settings.topic_user_events, [event_bytes(keyed), (None, unkeyed_purchase)])
    store = EdgeStore(settings.qdrant_path)
    try:
        with RunningConsumer(settings, encoder, store) as catalog:
            catalog.wait_caught_up()
            with RunningConsumers(behaviour_consumers(settings, store, encoder.dim)) as running:
                running.wait_caught_up()
        assert store.count(ITEMS) == len(items)
        assert store.retrieve(ITEMS, [unkeyed_item["item_id"]]) == {}
        assert set(store.retrieve(USERS, ["u-known", "u-anon"])) == {"u-known"}
    finally:
        store.close()
    assert unkeyed_item["item_id"] not in final_lists(settings)
    recs = latest_by_key(read_topic(settings, settings.topic_recommendations))
    assert set(recs) == {b"u-known"}
    for topic, value in [
        (settings.topic_items, unkeyed_item_value),
        (settings.topic_user_events, unkeyed_purchase),
    ]:
        [dead] = read_topic(settings, settings.dlq_topic(topic))
        assert dead.key is None and dead.value == value
        assert dead.headers["recstream.error"].decode() == MISSING_KEY
        assert b"no Kafka key" in dead.headers["recstream.detail"]
        assert dead.headers["recstream.source"].decode().startswith(f"{topic}/")
