"""Helpers for integration tests: publish events, run a real catalog consumer, read outputs."""

from __future__ import annotations

import csv
import itertools
import json
import random
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Producer

from encoders import Encoder
from recstream_tools.sample_catalog import sample_items
from stream.behaviour.item_stats import ItemStatsConsumer, ItemStatsProcessor
from stream.behaviour.processor import BehaviourConsumer, BehaviourProcessor
from stream.catalog.processor import CatalogConsumer, CatalogProcessor
from stream.collections import ITEMS
from stream.kafka.config import producer_config
from stream.kafka.dlq import LocalMessage
from stream.kafka.inspect import group_lag, latest_by_key, read_topic
from stream.loop import BatchConsumer, Output
from stream.settings import Settings
from stream.store import VectorStore

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def created(items: Iterable[dict[str, Any]]) -> list[tuple[bytes | None, bytes | None]]:
    """item.created events (version 1) of ``items``, as (key, value) pairs to publish."""
    return [event_bytes(upsert_event(i, 1, "item.created")) for i in items]


def publish(
    settings: Settings, topic: str, messages: Iterable[tuple[bytes | None, bytes | None]]
) -> int:
    """Publish raw (key, value) pairs; returns how many were acknowledged."""
    producer = Producer(producer_config(settings))
    acked = 0

    def on_delivery(err: Any, msg: Any) -> None:
        nonlocal acked
        assert err is None, err
        acked += 1

    for key, value in messages:
        producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
        producer.poll(0)
    producer.flush(30)
    return acked


def feed(processor: CatalogProcessor, events: list[dict[str, Any]]) -> list[Output]:
    """One batch of catalogue events through receive -> process -> confirm; its outputs."""
    batch = []
    for offset, event in enumerate(events):
        key, value = event_bytes(event)
        batch.append(processor.receive(LocalMessage(offset, key, value))[0])
    result = processor.process(batch)
    processor.confirm(result)
    return result.outputs


def published(outputs: Iterable[Output], lists: dict[str, Any]) -> None:
    """``lists`` gets the lists of the messages on ``outputs`` (item id -> [(id, score)], None
    for a tombstone)."""
    for output in outputs:
        assert output.key is not None
        message = None if output.value is None else json.loads(output.value)
        lists[output.key.decode()] = (
            None if message is None else [(n["item_id"], n["score"]) for n in message["neighbours"]]
        )


def event_bytes(event: dict[str, Any]) -> tuple[bytes, bytes]:
    """(key, value) of a catalogue event (key item id) or behaviour event (key user id)."""
    key = event.get("user_id") or event.get("item_id") or event["item"]["item_id"]
    return key.encode(), json.dumps(event).encode()


def view_message(user: str, n: int) -> tuple[bytes, bytes]:
    """(key, value) of ``user`` viewing ``item-<n>`` at minute ``n`` (event id ``<user>-<n>``)."""
    event = {
        "type": "view",
        "event_id": f"{user}-{n}",
        "occurred_at": f"2026-11-22T10:{n:02d}:00Z",
        "user_id": user,
        "item_id": f"item-{n}",
    }
    return user.encode(), json.dumps(event).encode()


def upsert_event(
    item: dict[str, Any], version: int, kind: str = "item.updated", minutes: int = 0
) -> dict[str, Any]:
    return {
        "type": kind,
        "event_id": f"e-{item['item_id']}-{version}",
        "occurred_at": (T0 + timedelta(minutes=minutes or version))
        .isoformat()
        .replace("+00:00", "Z"),
        "version": version,
        "item": item,
    }


def delete_event(item_id: str, version: int) -> dict[str, Any]:
    return {
        "type": "item.deleted",
        "event_id": f"d-{item_id}-{version}",
        "occurred_at": (T0 + timedelta(minutes=version)).isoformat().replace("+00:00", "Z"),
        "version": version,
        "item_id": item_id,
    }


class RunningConsumers:
    """Real consumers (BatchConsumer loops) on a real broker and store, each in a thread."""

    def __init__(self, consumers: list[BatchConsumer]) -> None:
        self.consumers = consumers
        self.stop_event = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self._run, args=(c,), daemon=True) for c in consumers
        ]

    def _run(self, consumer: BatchConsumer) -> None:
        try:
            consumer.run(self.stop_event)
        except BaseException as exc:  # the test inspects it
            self.errors.append(exc)

    @property
    def error(self) -> BaseException | None:
        return self.errors[0] if self.errors else None

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def __enter__(self) -> RunningConsumers:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=120)
            assert not t.is_alive(), "consumer did not stop"

    def wait_caught_up(self, timeout_s: float = 240.0) -> None:
        """Until every consumer's group has committed every message of its topic."""
        deadline = time.monotonic() + timeout_s
        s = self.consumers[0].settings
        while time.monotonic() < deadline:
            if self.error is not None:
                raise AssertionError(f"consumer failed: {self.error!r}") from self.error
            if all(group_lag(s, c.group, c.topic) == 0 for c in self.consumers):
                return
            time.sleep(0.5)
        state = [
            (c.topic, group_lag(s, c.group, c.topic), sorted(c._owned), c.paused, c.buffered)
            for c in self.consumers
        ]
        raise AssertionError(f"consumers did not catch up in {timeout_s}s: {state}")


class RunningConsumer(RunningConsumers):
    """The catalog consumer, running."""

    def __init__(self, settings: Settings, encoder: Encoder, store: VectorStore) -> None:
        self.settings = settings
        self.processor = CatalogProcessor(settings, encoder, store)
        self.consumer = CatalogConsumer(settings, self.processor)
        super().__init__([self.consumer])

    @property
    def thread(self) -> threading.Thread:
        return self.threads[0]


def behaviour_consumers(settings: Settings, store: VectorStore, dim: int) -> list[BatchConsumer]:
    return [
        BehaviourConsumer(settings, BehaviourProcessor(settings, store, dim)),
        ItemStatsConsumer(settings, ItemStatsProcessor(settings, store, dim)),
    ]


def final_lists(settings: Settings) -> dict[str, list[tuple[str, float]] | None]:
    """What a subscriber of items.neighbours holds at the end: item id -> list (None: tombstone)."""
    out: dict[str, list[tuple[str, float]] | None] = {}
    for key, value in latest_by_key(read_topic(settings, settings.topic_neighbours)).items():
        assert key is not None
        if value is None:
            out[key.decode()] = None
        else:
            msg = json.loads(value)
            assert msg["item_id"] == key.decode()
            out[key.decode()] = [(n["item_id"], n["score"]) for n in msg["neighbours"]]
    return out


def store_vectors(store: VectorStore) -> tuple[list[str], np.ndarray]:
    points = sorted(store.scroll(ITEMS, with_vectors=True), key=lambda p: p.key)
    return [p.key for p in points], np.stack([p.vector for p in points if p.vector is not None])


def assert_lists_match_brute_force(
    lists: dict[str, list[tuple[str, float]] | None], store: VectorStore, k: int, tol: float = 1e-4
) -> int:
    """Every stored item's final list is the exact cosine top-k over the stored vectors (ties
    aside), best first, without itself; returns the number of items checked."""
    keys, vectors = store_vectors(store)
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = vectors @ vectors.T
    index = {key: i for i, key in enumerate(keys)}
    for i, key in enumerate(keys):
        got = lists.get(key)
        assert got is not None, f"{key}: no list published"
        expected_len = min(k, len(keys) - 1)
        assert len(got) == expected_len, f"{key}: {len(got)} neighbours, expected {expected_len}"
        ids = [n for n, _ in got]
        scores = [s for _, s in got]
        assert key not in ids, f"{key} is its own neighbour"
        assert len(set(ids)) == len(ids), f"{key}: duplicate neighbours"
        assert all(a >= b - 1e-6 for a, b in itertools.pairwise(scores)), f"{key}: not descending"
        for n, s in got:
            assert n in index, f"{key}: neighbour {n} is not in the store (deleted?)"
            assert abs(sims[i, index[n]] - s) < tol, f"{key}->{n}: score {s} != {sims[i, index[n]]}"
        others = np.delete(sims[i], i)
        kth = np.sort(others)[::-1][expected_len - 1]
        # ties aside: everything strictly better than the k-th score must be listed
        must = {keys[j] for j in range(len(keys)) if j != i and sims[i, j] > kth + tol}
        assert must <= set(ids), f"{key}: missing {sorted(must - set(ids))[:5]}"
        assert min(sims[i, index[n]] for n in ids) >= kth - tol
    return len(keys)


def flipkart_items(n: int) -> list[dict[str, Any]] | None:
    """The first n Flipkart products as wire-format items, or None when the data is absent."""
    path = DATA / "flipkart" / "flipkart_com-ecommerce_sample_1050.csv"
    if not path.exists():
        return None
    items = []
    with path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            tree = row["product_category_tree"].strip('[]"')
            categories = [c.strip() for c in tree.split(">>") if c.strip()][:4]
            price = float(row["retail_price"]) if row["retail_price"] else None
            items.append(
                {
                    "item_id": f"fk-{row['uniq_id'][:12]}",
                    "title": row["product_name"][:1000],
                    "description": row["description"][:20_000] or None,
                    "brand": row["brand"][:200] or None,
                    "categories": [c[:200] for c in categories],
                    "price": price,
                    "currency": "INR",
                }
            )
            if len(items) == n:
                break
    return items


def store_adapter(kind: str, root: Path) -> VectorStore:
    """A store of one adapter under ``root``: ``edge`` (Qdrant Edge, embedded) or
    ``server-local`` (qdrant-client's local mode); the same paths whenever it is opened again."""
    from stream.store.edge import EdgeStore
    from stream.store.server import ServerStore

    if kind == "edge":
        return EdgeStore(root / "edge")
    return ServerStore(location=str(root / "local"))


def wait_for(
    predicate: Callable[[], bool], timeout_s: float = 60.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a ``recstream`` process these settings."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSTREAM_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"RECSTREAM_{name.upper()}"] = str(value)
    env["RECSTREAM_LOG_FORMAT"] = "json"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def committed_count(settings: Settings, group: str, topic: str) -> int:
    """How many messages of ``topic`` the group has committed (sum over partitions)."""
    from stream.kafka.inspect import scan_topic

    _, ends = scan_topic(settings, topic)
    return sum(ends.values()) - group_lag(settings, group, topic)


def final_recommendations(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """What a subscriber of users.recommendations holds at the end: user id -> items."""
    out = {}
    for key, value in latest_by_key(read_topic(settings, settings.topic_recommendations)).items():
        assert key is not None and value is not None
        message = json.loads(value)
        assert message["user_id"] == key.decode()
        out[key.decode()] = message["items"]
    return out


def feed_slowly(
    settings: Settings,
    catalogue: list[tuple[bytes, bytes]],
    behaviour: list[dict[str, Any]],
    chunks: tuple[int, int],
    pause_s: float,
) -> threading.Thread:
    """Publish the catalogue, then the behaviour, in chunks with pauses, from a started thread:
    events keep arriving while a test kills or moves consumers."""

    def feed() -> None:
        for start in range(0, len(catalogue), chunks[0]):
            publish(settings, settings.topic_items, catalogue[start : start + chunks[0]])
            time.sleep(pause_s)
        for start in range(0, len(behaviour), chunks[1]):
            events = behaviour[start : start + chunks[1]]
            publish(settings, settings.topic_user_events, map(event_bytes, events))
            time.sleep(pause_s)

    thread = threading.Thread(target=feed)
    thread.start()
    return thread


Messages = list[tuple[bytes, bytes]]


def catalogue_churn(rng: random.Random) -> tuple[Messages, Messages]:
    """A catalogue listed first; then, all at once and interleaved at random: new items, and
    for the first ones price-only updates, new texts and deletions (each item's in order)."""
    items = sample_items(120, seed=11)
    first, later = items[:60], items[60:]
    per_item: list[list[dict[str, Any]]] = [[upsert_event(i, 1, "item.created")] for i in later]
    for item in first:
        events = []
        version = 1
        if rng.random() < 0.5:
            version += 1
            events.append(upsert_event({**item, "price": (item.get("price") or 5) + 1}, version))
        if rng.random() < 0.4:
            version += 1
            events.append(upsert_event({**item, "title": item["title"] + " deluxe"}, version))
        if rng.random() < 0.2:
            version += 1
            events.append(delete_event(item["item_id"], version))
        per_item.append(events)
    burst: list[tuple[bytes, bytes]] = []
    while any(per_item):
        events = rng.choice([e for e in per_item if e])
        burst.append(event_bytes(events.pop(0)))
    return [event_bytes(upsert_event(i, 1, "item.created")) for i in first], burst
