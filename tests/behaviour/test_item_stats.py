"""The item-stats consumer on the real broker and store, fed directly on its internal activity
topic: replays of a hot item's early activities count once however many came between, records
stored before the watermarks still dedupe, and poison pills become dead letters while the
activities after them are still folded."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from kit import RunningConsumers, publish
from structlog.testing import capture_logs

from schemas.activity import ItemActivity
from stream.behaviour.item_stats import ItemStatsConsumer, ItemStatsProcessor
from stream.collections import ITEM_STATS
from stream.kafka.inspect import read_topic
from stream.kafka.topics import ensure_topics, item_stats_topics
from stream.settings import Settings
from stream.store import StoredPoint
from stream.store.edge import EdgeStore

pytestmark = pytest.mark.integration

_DIM = 8  # no text model here: only the stats collection is used
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SOURCE = "events-in/0"  # the behaviour consumer's input partition the activities name


def _activity(item: str, offset: int, co: dict[str, float] | None = None) -> ItemActivity:
    return ItemActivity(item, 1.0, T0, f"{SOURCE}/{offset}#{item}", co or {})


def _messages(activities: Iterable[ItemActivity]) -> list[tuple[bytes | None, bytes | None]]:
    return [(a.item_id.encode(), a.to_json()) for a in activities]


def _fold(settings: Settings, store: EdgeStore) -> None:
    """Run the item-stats consumer until its group has committed the whole activity topic."""
    consumer = ItemStatsConsumer(settings, ItemStatsProcessor(settings, store, _DIM))
    with RunningConsumers([consumer]) as running:
        running.wait_caught_up()
    assert running.errors == [], running.errors


def _stats(store: EdgeStore, item: str) -> dict[str, Any]:
    """An item's stats as stored: a sort key and one text of the rest, nothing else."""
    payload = store.retrieve(ITEM_STATS, [item])[item].payload
    assert sorted(payload) == ["key", "pop_key", "stats"], payload
    record = json.loads(payload["stats"])
    return {
        "pop": record["pop"],
        "co": record["co"],
        "upto": record["upto"],
        "seen": record.get("seen"),
    }


def test_a_redone_batch_after_a_thousand_activities_on_a_hot_item_counts_once(
    make_settings: Callable[..., Settings],
) -> None:
    """A hot item takes 1,200 activities from one input partition; then an early batch (its
    first 100) is delivered again, as a behaviour consumer redoing that batch would, together
    with one new activity: only the new one counts (pop 1,201, not 1,301), whatever came
    between. A record stored before the watermarks (its last 1,000 sources in ``seen``) dedupes
    the same way and is rewritten compact, without ``seen``."""
    settings = make_settings()
    ensure_topics(settings, item_stats_topics(settings))
    topic = settings.topic_item_activity()
    hot = [_activity("hot", n, {f"pal-{n % 3}": 1.0}) for n in range(1_200)]
    store = EdgeStore(settings.qdrant_path)
    try:
        # an item whose stats were written before the watermarks: the last 1,000 sources
        ItemStatsProcessor(settings, store, _DIM)  # the collections
        old_sources = [f"{SOURCE}/{n}#old" for n in range(1_000)]
        old = {"item_id": "old", "pop": 1_000.0, "co": {}, "ref": T0.isoformat()}
        store.upsert(
            ITEM_STATS,
            [StoredPoint("old", {**old, "seen": old_sources}, np.ones(1, dtype=np.float32))],
        )

        publish(settings, topic, _messages(hot))
        _fold(settings, store)
        before = _stats(store, "hot")
        assert before["pop"] == pytest.approx(1_200.0)
        assert before["co"] == pytest.approx({"pal-0": 400.0, "pal-1": 400.0, "pal-2": 400.0})
        assert before["upto"] == {SOURCE: 1_199}

        redone = [*hot[:100], _activity("hot", 1_200, {"pal-0": 1.0})]
        old_redone = [_activity("old", n) for n in range(990, 1_001)]
        publish(settings, topic, _messages(redone + old_redone))
        _fold(settings, store)
        after = _stats(store, "hot")
        assert after["pop"] == pytest.approx(1_201.0), "a replayed activity counted twice"
        assert after["co"] == pytest.approx({"pal-0": 401.0, "pal-1": 400.0, "pal-2": 400.0})
        assert after["upto"] == {SOURCE: 1_200}
        migrated = _stats(store, "old")
        assert migrated["pop"] == pytest.approx(1_001.0), "an old record's source counted twice"
        assert migrated["upto"] == {SOURCE: 1_000} and migrated["seen"] is None
    finally:
        store.close()
    assert read_topic(settings, settings.dlq_topic(topic)) == []


def _poison_pills() -> list[tuple[str, bytes | None, bytes | None, str]]:
    """(what, key, value, reason code) of messages that are no activity."""
    good = json.loads(_activity("sku-1", 50).to_json())

    def body(**changes: Any) -> bytes:
        return json.dumps({**good, **changes}).encode()

    nested = b'{"item_id": "sku-1", "co": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    def number(digits: int, **changes: Any) -> bytes:
        """The body with the placeholder ``"N"`` written as a number of ``digits`` nines."""
        return body(**changes).replace(b'"N"', b"9" * digits)

    return [
        ("deeply nested JSON", b"sku-1", nested, "invalid_json"),
        ("a 400-digit weight", b"sku-1", number(400, weight="N"), "schema"),
        ("a 400-digit pair weight", b"sku-1", number(400, co={"sku-2": "N"}), "schema"),
        ("a 5,000-digit integer", b"sku-1", number(5_000, weight="N"), "invalid_json"),
        ("a lone surrogate as item id", b"sku-1", body(item_id="\ud800"), "schema"),
        ("a time before year 1 in UTC", b"sku-1", body(at="0001-01-01T00:00:00+14:00"), "schema"),
        ("a time after year 9999 in UTC", b"sku-1", body(at="9999-12-31T23:59:59-14:00"), "schema"),
        ("a source without an offset", b"sku-1", body(source="no-offset#sku-1"), "schema"),
        ("a tombstone", b"sku-1", None, "invalid_json"),
        ("not JSON", b"sku-1", b"{nope", "invalid_json"),
        ("a key that is not the item", b"sku-2", body(), "key_mismatch"),
        ("no key", None, body(), "missing_key"),
    ]


def test_poison_pills_on_the_activity_topic_become_dead_letters(
    make_settings: Callable[..., Settings],
) -> None:
    """Deep JSON, integers too large for a float (or for Python's int parser), a lone surrogate,
    times datetime cannot hold in UTC, tombstones and wrong keys on the internal activity topic
    each land in its DLQ with their reason code and original bytes; the consumer keeps running
    and folds the good activities before and after them."""
    settings = make_settings()
    ensure_topics(settings, item_stats_topics(settings))
    topic = settings.topic_item_activity()
    pills = _poison_pills()
    first = [_activity("sku-1", 1, {"sku-2": 1.0}), _activity("sku-2", 1, {"sku-1": 1.0})]
    later = [_activity("sku-1", 2), _activity("sku-3", 2)]
    store = EdgeStore(settings.qdrant_path)
    try:
        publish(settings, topic, _messages(first))
        publish(settings, topic, [(key, value) for _, key, value, _ in pills])
        publish(settings, topic, _messages(later))
        _fold(settings, store)
        assert _stats(store, "sku-1")["pop"] == pytest.approx(2.0)
        assert _stats(store, "sku-1")["co"] == pytest.approx({"sku-2": 1.0})
        assert _stats(store, "sku-3")["pop"] == pytest.approx(1.0)
        assert store.count(ITEM_STATS) == 3, "a poison pill reached the store"
    finally:
        store.close()
    dead = {(r.key, r.value): r for r in read_topic(settings, settings.dlq_topic(topic))}
    assert len(dead) == len(pills)
    for what, key, value, reason in pills:
        letter = dead[(key, value)]
        assert letter.headers["recstream.error"].decode() == reason, what
        assert letter.headers["recstream.source"].decode().startswith(f"{topic}/"), what


def test_a_damaged_stats_record_is_logged_once_and_started_afresh(
    make_settings: Callable[..., Settings],
) -> None:
    """Stored records the consumer cannot read (a field that is not JSON, of the wrong type, not
    finite, another item's record) do not stop it: each is logged once, as a warning with the
    item id, and the item's stats start afresh from the new activities, which are all folded;
    a sound record beside them keeps its counts."""
    settings = make_settings()
    ensure_topics(settings, item_stats_topics(settings))
    topic = settings.topic_item_activity()
    sound = {"pop": 3.0, "co": '{"pal":1.0}', "ref": T0.isoformat(), "upto": "{}"}
    packed = {"pop": 3.0, "co": {"pal": 1.0}, "ref": T0.isoformat(), "upto": {}}

    def text(**changes: Any) -> dict[str, Any]:  # a record stored as one text
        return {"stats": json.dumps({**packed, **changes}), "pop_key": 1.0}

    damaged = {
        "bad-upto": {**sound, "upto": "{not json"},
        "bad-upto-type": {**sound, "upto": '{"events-in/0": "seven"}'},
        "bad-co": {**sound, "co": '{"pal": "heavy"}'},
        "bad-co-list": {**sound, "co": "[1, 2]"},
        "bad-co-infinite": {**sound, "co": '{"pal": Infinity}'},
        "bad-pop": {**sound, "pop": "lots"},
        "bad-ref": {**sound, "ref": "yesterday"},
        "bad-owner": {**sound, "item_id": "someone-else"},
        "bad-text": {"stats": "{not json", "pop_key": 1.0},
        "bad-text-list": {"stats": "[1, 2]", "pop_key": 1.0},
        "bad-text-co": text(co={"pal": "heavy"}),
        "bad-text-owner": text(item_id="someone-else"),
    }
    records = {**damaged, "sound": sound, "sound-text": text()}
    store = EdgeStore(settings.qdrant_path)
    try:
        ItemStatsProcessor(settings, store, _DIM)  # the collections
        one = np.ones(1, dtype=np.float32)
        store.upsert(
            ITEM_STATS,
            [
                StoredPoint(item, record if "stats" in record else {"item_id": item, **record}, one)
                for item, record in records.items()
            ],
        )
        new = [_activity(item, n, {"pal": 2.0}) for n, item in enumerate(records)]
        new += [_activity(item, len(new) + n) for n, item in enumerate(records)]
        publish(settings, topic, _messages(new))
        with capture_logs() as logs:
            _fold(settings, store)
        for item in damaged:
            got = _stats(store, item)
            assert got["pop"] == pytest.approx(2.0), item
            assert got["co"] == pytest.approx({"pal": 2.0}), item
            assert got["upto"] == {SOURCE: len(records) + list(records).index(item)}, item
        assert _stats(store, "sound")["pop"] == pytest.approx(5.0)
        assert _stats(store, "sound")["co"] == pytest.approx({"pal": 3.0})
        assert _stats(store, "sound-text")["pop"] == pytest.approx(5.0)
        assert _stats(store, "sound-text")["co"] == pytest.approx({"pal": 3.0})
    finally:
        store.close()
    warned = [e["item_id"] for e in logs if e["event"] == "item_stats.damaged"]
    assert sorted(warned) == sorted(damaged)
    assert all(e["log_level"] == "warning" for e in logs if e["event"] == "item_stats.damaged")
    assert read_topic(settings, settings.dlq_topic(topic)) == []
