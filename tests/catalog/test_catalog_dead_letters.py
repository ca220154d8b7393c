"""Bad catalogue input goes to catalog.items.dlq, unchanged and labelled; the rest goes on."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from kit import RunningConsumer, event_bytes, final_lists, publish, upsert_event

from encoders import Encoder
from recstream_tools.sample_catalog import sample_items
from stream.collections import ITEMS
from stream.kafka.inspect import read_topic
from stream.settings import Settings
from stream.store.edge import EdgeStore

pytestmark = pytest.mark.integration


def test_bad_events_are_dead_lettered_and_valid_ones_processed(
    make_settings: Callable[..., Settings], encoder: Encoder
) -> None:
    """Malformed JSON, invalid UTF-8, schema violations, a null value, a key that disagrees
    with the body and an oversized value each land in the DLQ with their reason code, original
    bytes and source position; every valid event around them is processed and committed."""
    settings = make_settings(max_message_bytes=4_096)
    items = sample_items(40, seed=21)
    good = [event_bytes(upsert_event(i, 1, "item.created")) for i in items]
    huge_item = {**items[0], "item_id": "sku-huge", "description": "word " * 2_000}
    bad: list[tuple[tuple[bytes | None, bytes | None], str]] = [
        ((b"sku-x1", b'{"type": "item.created", "event_id": '), "invalid_json"),
        ((b"sku-x2", b"\xff\xfe not utf-8"), "invalid_json"),
        ((b"sku-x3", None), "invalid_json"),
        (
            (
                b"sku-x4",
                json.dumps(
                    {
                        "type": "item.created",
                        "event_id": "e",
                        "occurred_at": "2026-11-22T10:00:00Z",
                        "item": {"item_id": "sku-x4"},
                    }
                ).encode(),
            ),
            "schema",
        ),
        (
            (
                b"sku-x5",
                json.dumps(
                    {
                        "type": "item.exploded",
                        "event_id": "e",
                        "occurred_at": "2026-11-22T10:00:00Z",
                        "item_id": "sku-x5",
                    }
                ).encode(),
            ),
            "schema",
        ),
        (
            (
                b"sku-x6",
                json.dumps(
                    upsert_event({**items[1], "item_id": "sku-x6", "price": -3}, 1)
                ).encode(),
            ),
            "schema",
        ),
        (
            (b"someone-else", event_bytes(upsert_event({**items[2], "item_id": "sku-x7"}, 1))[1]),
            "key_mismatch",
        ),
        (event_bytes(upsert_event(huge_item, 1)), "too_large"),
    ]
    # every bad message exactly once, interleaved with the good ones
    interleaved: list[tuple[bytes | None, bytes | None]] = []
    for i, msg in enumerate(good):
        interleaved.append(msg)
        if i < len(bad):
            interleaved.append(bad[i][0])
    publish(settings, settings.topic_items, interleaved)

    store = EdgeStore(settings.qdrant_path)
    try:
        with RunningConsumer(settings, encoder, store) as running:
            running.wait_caught_up()
        assert store.count(ITEMS) == len(items)
        lists = final_lists(settings)
        assert {i["item_id"] for i in items} <= set(lists)
    finally:
        store.close()

    dead = read_topic(settings, settings.dlq_topic(settings.topic_items))
    assert len(dead) == len(bad)
    by_key = {r.key: r for r in dead}
    for (key, value), reason in bad:
        record = by_key[key]
        assert record.value == value, f"{key!r}: value changed"
        assert record.headers["recstream.error"].decode() == reason, key
        assert record.headers["recstream.detail"], key
        topic, partition, offset = record.headers["recstream.source"].decode().rsplit("/", 2)
        assert topic == settings.topic_items and int(partition) >= 0 and int(offset) >= 0
