"""Behaviour edge cases on the real broker and store: bad events, and items that arrive late."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from kit import (
    RunningConsumer,
    RunningConsumers,
    behaviour_consumers,
    event_bytes,
    publish,
    upsert_event,
)

from encoders import Encoder
from encoders.hybrid import dense_part
from recstream_tools.sample_catalog import sample_items
from stream.collections import ITEMS, USERS
from stream.kafka.inspect import latest_by_key, read_topic
from stream.ranking.profile import history_from_payload
from stream.settings import Settings
from stream.store.edge import EdgeStore

pytestmark = pytest.mark.integration


def _event(user: str, item: str, kind: str, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "event_id": f"{user}-{n}",
        "occurred_at": f"2026-11-22T10:{n:02d}:00Z",
        "user_id": user,
        "item_id": item,
        **extra,
    }


def test_bad_behaviour_events_are_dead_lettered(
    make_settings: Callable[..., Settings], encoder: Encoder
) -> None:
    """Malformed JSON, unknown event types, impossible values (negative or zero quantity, NaN
    price, naive time) and a key that is not the user id land in user.events.dlq with reason
    codes and original bytes; every valid shopper still gets recommendations."""
    settings = make_settings()
    items = sample_items(30, seed=41)
    ids = [i["item_id"] for i in items]
    good = [_event(f"u-{n}", ids[n], "purchase", n) for n in range(10)]
    bad: list[tuple[tuple[bytes, bytes], str]] = [
        ((b"u-x", b"{not json"), "invalid_json"),
        ((b"u-x", json.dumps(_event("u-x", ids[0], "wishlist", 1)).encode()), "schema"),
        (
            (b"u-x", json.dumps(_event("u-x", ids[0], "purchase", 2, quantity=-3)).encode()),
            "schema",
        ),
        ((b"u-x", json.dumps(_event("u-x", ids[0], "purchase", 3, quantity=0)).encode()), "schema"),
        (
            (
                b"u-x",
                (
                    b'{"type": "view", "event_id": "e", "occurred_at": "2026-11-22T10:00:00Z", '
                    b'"user_id": "u-x", "item_id": "a", "price": NaN}'
                ),
            ),
            "invalid_json",
        ),
        (
            (
                b"u-x",
                json.dumps(
                    {**_event("u-x", ids[0], "view", 4), "occurred_at": "2026-11-22T10:00:00"}
                ).encode(),
            ),
            "schema",
        ),
        ((b"someone-else", json.dumps(_event("u-y", ids[0], "view", 5)).encode()), "key_mismatch"),
    ]
    messages: list[tuple[bytes | None, bytes | None]] = []
    for n, event in enumerate(good):
        messages.append(event_bytes(event))
        if n < len(bad):
            messages.append(bad[n][0])
    store = EdgeStore(settings.qdrant_path)
    try:
        publish(
            settings,
            settings.topic_items,
            (event_bytes(upsert_event(i, 1, "item.created")) for i in items),
        )
        publish(settings, settings.topic_user_events, messages)
        with RunningConsumer(settings, encoder, store) as catalog:
            catalog.wait_caught_up()
            with RunningConsumers(behaviour_consumers(settings, store, encoder.dim)) as running:
                running.wait_caught_up()
    finally:
        store.close()
    recs = latest_by_key(read_topic(settings, settings.topic_recommendations))
    assert set(recs) == {e["user_id"].encode() for e in good}
    dead = {
        r.value: r for r in read_topic(settings, settings.dlq_topic(settings.topic_user_events))
    }
    assert len(dead) == len(bad)
    for (key, value), reason in bad:
        assert dead[value].key == key
        assert dead[value].headers["recstream.error"].decode() == reason, value


def test_event_for_an_unknown_item_counts_once_the_item_arrives(
    make_settings: Callable[..., Settings], encoder: Encoder
) -> None:
    """A purchase of an item the store does not know is kept in the shopper's history; once the
    item is published, the shopper's next event gives a profile that includes it, equal to the
    weighted, decayed mean computed here with numpy."""
    settings = make_settings(profile_half_life_hours=1.0)
    items = sample_items(20, seed=42)
    late = items.pop()
    store = EdgeStore(settings.qdrant_path)
    try:
        publish(
            settings,
            settings.topic_items,
            (event_bytes(upsert_event(i, 1, "item.created")) for i in items),
        )
        with RunningConsumer(settings, encoder, store) as catalog:
            catalog.wait_caught_up()
            with RunningConsumers(behaviour_consumers(settings, store, encoder.dim)) as running:
                first = [
                    _event("u-1", items[0]["item_id"], "view", 0),
                    _event("u-1", late["item_id"], "purchase", 30),
                ]
                publish(settings, settings.topic_user_events, map(event_bytes, first))
                running.wait_caught_up()
                before = store.retrieve(USERS, ["u-1"], with_vectors=True)["u-1"]
                assert [h.item_id for h in history_from_payload(before.payload["history"])] == [
                    items[0]["item_id"],
                    late["item_id"],
                ]

                publish(
                    settings,
                    settings.topic_items,
                    [event_bytes(upsert_event(late, 1, "item.created"))],
                )
                catalog.wait_caught_up()
                publish(
                    settings,
                    settings.topic_user_events,
                    [event_bytes(_event("u-1", items[1]["item_id"], "click", 59))],
                )
                running.wait_caught_up()
                after = store.retrieve(USERS, ["u-1"], with_vectors=True)["u-1"]
                vectors = store.retrieve(
                    ITEMS,
                    [items[0]["item_id"], items[1]["item_id"], late["item_id"]],
                    with_vectors=True,
                )
    finally:
        store.close()
    full = [vectors[k].vector for k in (items[0]["item_id"], items[1]["item_id"], late["item_id"])]
    assert all(v is not None for v in full)
    # the profile is of the model's part of the hybrid vectors, stored padded with zeros
    model_dim = dense_part(encoder).dim
    v0, v1, vl = (np.asarray(v)[:model_dim] for v in full)
    # weights view 1, click 2, purchase 8; ages 59, 0 and 29 minutes; half-life one hour
    expected = 1.0 * 0.5 ** (59 / 60) * v0 + 2.0 * v1 + 8.0 * 0.5 ** (29 / 60) * vl
    padding = np.zeros(encoder.dim - model_dim)
    expected = np.concatenate([expected / np.linalg.norm(expected), padding])
    vl = np.asarray(full[2])
    assert after.vector is not None and before.vector is not None
    np.testing.assert_allclose(after.vector, expected, atol=1e-5)
    assert float(before.vector @ vl) < float(after.vector @ vl)


def test_a_shopper_whose_only_event_names_an_unknown_item_gets_popular_items(
    make_settings: Callable[..., Settings], encoder: Encoder
) -> None:
    """The README's cold-start promise: a shopper without a usable history (here, one event on
    an item the store does not know yet) gets the most popular items, not an empty list: the
    items others bought, in order of how often, each with only popularity scoring."""
    settings = make_settings()
    items = sample_items(12, seed=44)
    store = EdgeStore(settings.qdrant_path)
    try:
        publish(
            settings,
            settings.topic_items,
            (event_bytes(upsert_event(i, 1, "item.created")) for i in items),
        )
        with RunningConsumer(settings, encoder, store) as catalog:
            catalog.wait_caught_up()
            with RunningConsumers(behaviour_consumers(settings, store, encoder.dim)) as running:
                # items 0..2 bought 3, 2 and 1 times by others
                bought = [
                    _event(f"u-{n}-{k}", items[n]["item_id"], "purchase", k)
                    for n in range(3)
                    for k in range(3 - n)
                ]
                publish(settings, settings.topic_user_events, map(event_bytes, bought))
                running.wait_caught_up()
                publish(
                    settings,
                    settings.topic_user_events,
                    [event_bytes(_event("u-new", "sku-not-yet-published", "view", 30))],
                )
                running.wait_caught_up()
    finally:
        store.close()
    lists = latest_by_key(read_topic(settings, settings.topic_recommendations))
    got = json.loads(lists[b"u-new"] or b"{}")["items"]
    assert [h["item_id"] for h in got] == [items[n]["item_id"] for n in range(3)]
    for h in got:
        assert h["components"]["popularity"] > 0
        assert h["components"]["semantic"] == 0 and h["components"]["learned"] == 0
