"""``recstream demo``: the whole pipeline on embedded parts, start to finish, with no set-up.

Starts the embedded broker, opens the embedded store in a temporary directory, loads the packaged
model, runs the catalog, behaviour and item-stats consumers, publishes a sample catalogue (then
updates and deletes an item to show the lists follow) and sample shopper behaviour, prints
neighbour lists and recommendations, and stops everything it started.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from encoders import load_encoder
from recstream_tools.broker import EmbeddedBroker, on_embedded
from recstream_tools.sample_behaviour import sample_behaviour
from recstream_tools.sample_catalog import catalog_events, sample_items
from stream.backfill.publish import BackfillRequest, backfill
from stream.backfill.rows import ColumnMap, Kind
from stream.collections import ITEMS
from stream.kafka.config import producer_config
from stream.kafka.inspect import group_lag, latest_by_key, read_topic
from stream.kafka.topics import all_topics, ensure_topics
from stream.loop import BatchConsumer
from stream.runner import build_consumers
from stream.settings import Settings
from stream.store.edge import EdgeStore


def _say(text: str = "") -> None:
    print(text, flush=True)


def _publish(settings: Settings, topic: str, events: list[dict[str, Any]]) -> None:
    producer = Producer(producer_config(settings))
    for event in events:
        key = event.get("user_id") or event.get("item_id") or event["item"]["item_id"]
        producer.produce(topic, key=key.encode(), value=json.dumps(event).encode())
        producer.poll(0)
    producer.flush(30)


def _backfill(settings: Settings, kind: Kind, events: list[dict[str, Any]], workdir: str) -> None:
    """Publish ``events`` the way a shop loads its history: a JSON lines file, `recstream
    backfill`."""
    path = Path(workdir) / f"{kind}.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    request = BackfillRequest(kind, path, ColumnMap(kind, {}, {}), progress=False)
    report = backfill(settings, request)
    if report.rejected or not report.complete:
        raise RuntimeError(f"backfill of the sample {kind} rejected {report.rejected} rows")


def _wait_committed(
    settings: Settings, consumer: BatchConsumer[Any, Any], total: int, t0: float
) -> None:
    """Print progress until the consumer's group has committed every published event."""
    last = -1
    while True:
        lag = group_lag(settings, consumer.group, consumer.topic)
        done = total - lag
        if done != last:
            rate = consumer.progress.events / max(1e-9, time.monotonic() - t0)
            _say(
                f"  processed {done:>5}/{total} events, "
                f"{consumer.progress.outputs} messages published ({rate:,.0f} events/s)"
            )
            last = done
        if lag == 0:
            return
        time.sleep(1.0)


def _show(settings: Settings, titles: dict[str, str], item_ids: list[str]) -> None:
    latest = latest_by_key(read_topic(settings, settings.topic_neighbours))
    for item_id in item_ids:
        value = latest.get(item_id.encode())
        if value is None:
            _say(f"\n{item_id}: (tombstone: deleted)")
            continue
        message = json.loads(value)
        _say(f"\n{item_id}  {titles.get(item_id, '?')}  (version {message['item_version']})")
        for n in message["neighbours"][:5]:
            _say(f"   {n['score']:.3f}  {n['item_id']}  {titles.get(n['item_id'], '?')}")


def _update_and_delete(
    settings: Settings, catalogue: list[dict[str, Any]], titles: dict[str, str]
) -> list[str]:
    """Publish a title change of the first item and a deletion of the second."""
    changed, removed = catalogue[0], catalogue[1]
    new_title = f"{changed['title']} (new edition)"
    edit = {
        "type": "item.updated",
        "event_id": "demo-update",
        "occurred_at": "2026-11-22T11:00:00Z",
        "version": 2,
        "item": {**changed, "title": new_title},
    }
    deletion = {
        "type": "item.deleted",
        "event_id": "demo-delete",
        "occurred_at": "2026-11-22T11:00:00Z",
        "version": 2,
        "item_id": removed["item_id"],
    }
    titles[changed["item_id"]] = new_title
    _publish(settings, settings.topic_items, [edit, deletion])
    _say(f"\nupdated {changed['item_id']} and deleted {removed['item_id']}")
    return [changed["item_id"], removed["item_id"]]


def _show_recommendations(
    settings: Settings, titles: dict[str, str], behaviour: list[dict[str, Any]], users: list[str]
) -> None:
    latest = latest_by_key(read_topic(settings, settings.topic_recommendations))
    for user in users:
        seen = [e for e in behaviour if e["user_id"] == user][-3:]
        _say(f"\n{user}, lately: " + "; ".join(f"{e['type']} {titles[e['item_id']]}" for e in seen))
        message = json.loads(latest.get(user.encode()) or b'{"items": []}')
        for r in message["items"][:5]:
            c = r["components"]
            _say(
                f"   {r['score']:.3f}  {titles.get(r['item_id'], '?')}"
                f"  (semantic {c['semantic']:.2f},"
                f" collaborative {c['collaborative']:.2f}, popularity {c['popularity']:.2f},"
                f" price {c['price']:.2f})"
            )


def run_demo(base: Settings, items: int = 1200, show: int = 5, shoppers: int = 80) -> int:
    workdir = tempfile.mkdtemp(prefix="recstream-demo-")
    with EmbeddedBroker() as broker:
        settings = on_embedded(base, broker.bootstrap, workdir)
        _say(f"recstream demo: embedded broker at {broker.bootstrap}, store in {workdir}")
        encoder = load_encoder(settings)
        _say(f"model {encoder.name} ({encoder.dim} dims) on {encoder.device}")
        catalogue = sample_items(items)
        titles = {i["item_id"]: i["title"] for i in catalogue}
        store = EdgeStore(settings.qdrant_path)
        stop = threading.Event()
        consumers = build_consumers(settings, "all", store, encoder)
        catalog, behaviour, _ = consumers
        threads = [
            threading.Thread(target=c.run, args=(stop,), name=c.topic, daemon=True)
            for c in consumers
        ]
        try:
            ensure_topics(settings, all_topics(settings))
            t0 = time.monotonic()
            events = catalog_events(catalogue, datetime(2026, 11, 22, 10, tzinfo=UTC))
            _backfill(settings, "items", events, workdir)
            _say(
                f"published {len(catalogue)} item.created events to {settings.topic_items} "
                "(recstream backfill items)"
            )
            for t in threads:
                t.start()
            _wait_committed(settings, catalog, len(catalogue), t0)
            elapsed = time.monotonic() - t0
            rate = len(catalogue) / elapsed
            _say(
                f"{len(catalogue)} items indexed in {elapsed:.1f} s: {rate:,.0f} items/s end to end"
            )

            touched = _update_and_delete(settings, catalogue, titles)
            _wait_committed(settings, catalog, len(catalogue) + 2, t0)
            _say(f"\nsample of {settings.topic_neighbours} (top 5 of {settings.neighbours_k}):")
            _show(settings, titles, touched + [c["item_id"] for c in catalogue[2 : 2 + show]])

            clicks = sample_behaviour(catalogue[2:], users=shoppers)
            _backfill(settings, "events", clicks, workdir)
            _say(f"\npublished {len(clicks)} behaviour events of {shoppers} shoppers")
            t1 = time.monotonic()
            _wait_committed(settings, behaviour, len(clicks), t1)
            n = settings.recommendations_n
            _say(f"\nsample of {settings.topic_recommendations} (top 5 of {n}):")
            _show_recommendations(
                settings, titles, clicks, sorted({e["user_id"] for e in clicks})[:3]
            )
            _say(
                f"\ndone: {catalog.progress.totals.get('encoded', 0)} items encoded, "
                f"{catalog.progress.totals.get('lists', 0)} neighbour lists and "
                f"{behaviour.progress.totals.get('recommendations', 0)} recommendation lists "
                f"published, {store.count(ITEMS)} items in the store"
            )
        finally:
            stop.set()
            for t in threads:
                if t.is_alive():
                    t.join(timeout=60)
            store.close()
            shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.flush()
    return 0
