"""``recstream bench behaviour``: events/s from ``user.events`` to ``users.recommendations``,
latency, and the ratio to the catalog path's drain measured in the same run.

The pipeline is what ``recstream run behaviour`` runs (the behaviour consumer and the item-stats
consumer) on the embedded broker and the embedded store. Phases, one process:

1. catalog: ``--catalog-events`` item.created events through the catalog consumer (BERT,
   lists), drained at once: its events/s is the ratio's denominator;
2. the rest of the catalogue (up to ``--items``) is preloaded as vectors: the encoded items'
   vectors in turn, each with fresh noise (the behaviour path reads vectors, it never encodes);
3. warm-up: ``--users`` shoppers' generated histories are drained, then the learned model is
   trained on what the store holds (``recstream train recommender``);
4. throughput: ``--events`` new events of those shoppers are published at once; the rate is
   events over the time from the first publish until the behaviour consumer has processed all;
5. latency: new events at a steady ``--load`` fraction of that rate, each for a shopper who has
   no other event in the phase; each latency is from just before the publish to the arrival of
   that shopper's next recommendation message at a reader assigned to the output topic.
"""

from __future__ import annotations

import gc
import json
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
from confluent_kafka import Producer
from threadpoolctl import threadpool_info, threadpool_limits

from encoders import load_encoder
from encoders.hybrid import lexical_width
from recstream_tools.bench.arrivals import Arrivals, topic_reader
from recstream_tools.bench.e2e import _throughput
from recstream_tools.bench.report import (
    LoadMonitor,
    figure,
    latency_cdf,
    new_result,
    percentiles,
    write_outputs,
)
from recstream_tools.bench.scaling import jittered
from recstream_tools.broker import EmbeddedBroker, on_embedded
from recstream_tools.sample_behaviour import sample_behaviour
from recstream_tools.sample_catalog import catalog_events, sample_items
from stream.catalog.neighbours import screened
from stream.collections import ITEMS, ensure_collections
from stream.kafka.config import producer_config
from stream.kafka.topics import ensure_topics
from stream.loop import BatchConsumer
from stream.ranking.learned import train_from_store
from stream.runner import build_consumers
from stream.settings import Settings
from stream.store import StoredPoint
from stream.store.edge import EdgeStore

NAME = "behaviour"
GOAL_RATIO = 10.0
GOAL_RATE = 1_000.0
GOAL_P99_MS = 250.0
_START = datetime(2026, 11, 22, 10, tzinfo=UTC)
_CHUNK = 1_000
_TYPES = ("view", "click", "add_to_cart", "purchase")
_ODDS = (0.6, 0.2, 0.12, 0.08)


class KeyArrivals:
    """Arrival times (``time.monotonic()``) of every message of a topic, per key."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self._consumer = topic_reader(settings, topic)
        self._times: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="bench-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            first = self._consumer.poll(0.05)  # then what is already fetched (see Arrivals)
            if first is None:
                continue
            now = time.monotonic()
            for msg in [first, *self._consumer.consume(num_messages=1_000, timeout=0)]:
                key = msg.key()
                if msg.error() is None and key is not None:
                    with self._lock:
                        self._times.setdefault(key.decode(), []).append(now)

    def first_after(self, key: str, moment: float) -> float | None:
        with self._lock:
            return next((t for t in self._times.get(key, ()) if t >= moment), None)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()


def _events(
    users: list[str], items: list[str], count: int, start: datetime, seed: int
) -> list[dict[str, Any]]:
    """``count`` behaviour events, shoppers in turn, each on a random item."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        kind = rng.choices(_TYPES, _ODDS)[0]
        out.append(
            {
                "type": kind,
                "event_id": f"bench-{seed}-{n}",
                "occurred_at": (start + timedelta(seconds=n)).isoformat().replace("+00:00", "Z"),
                "user_id": users[n % len(users)],
                "item_id": rng.choice(items),
                "quantity": 1,
            }
        )
    return out


def _publish_all(producer: Producer, topic: str, events: list[dict[str, Any]]) -> None:
    for e in events:
        producer.produce(topic, key=e["user_id"].encode(), value=json.dumps(e).encode())
        producer.poll(0)
    producer.flush(60)


def _drain(
    consumer: BatchConsumer[Any, Any],
    producer: Producer,
    topic: str,
    events: list[dict[str, Any]],
    max_s: float,
) -> dict[str, Any]:
    """Publish at once; events/s until the consumer has processed them all."""
    target = consumer.progress.events + len(events)
    batches = consumer.progress.batches
    started = time.monotonic()
    _publish_all(producer, topic, events)
    published = time.monotonic() - started
    while consumer.progress.events < target and time.monotonic() - started < max_s:
        time.sleep(0.01)
    elapsed = max(time.monotonic() - started, 1e-9)
    done = len(events) - max(0, target - consumer.progress.events)
    return {
        "events": len(events),
        "processed": done,
        "complete": done == len(events),
        "publish_s": round(published, 2),
        "s": round(elapsed, 2),
        "events_per_s": round(done / elapsed, 1),
        "batches": consumer.progress.batches - batches,
    }


def _latency(
    producer: Producer, topic: str, events: list[dict[str, Any]], arrivals: KeyArrivals, rate: float
) -> dict[str, Any]:
    sent: list[tuple[str, float]] = []
    started = time.monotonic()
    for number, event in enumerate(events):
        delay = started + number / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent.append((event["user_id"], time.monotonic()))
        producer.produce(topic, key=event["user_id"].encode(), value=json.dumps(event).encode())
        producer.poll(0)
    producer.flush(60)
    duration = time.monotonic() - started
    deadline = time.monotonic() + 60
    latencies: list[float] = []
    for user, at in sent:
        got = arrivals.first_after(user, at)
        while got is None and time.monotonic() < deadline:
            time.sleep(0.05)
            got = arrivals.first_after(user, at)
        if got is not None:
            latencies.append((got - at) * 1000)
    return {
        "offered_events_per_s": round(rate, 2),
        "achieved_publish_rate": round(len(events) / duration, 2),
        "events": len(events),
        "measured": len(latencies),
        "missing": len(events) - len(latencies),
        "latency_ms": {
            **percentiles(latencies),
            "mean": round(sum(latencies) / max(len(latencies), 1), 1),
            "max": round(max(latencies, default=0.0), 1),
        },
        "latencies_ms": [round(v, 1) for v in latencies],
    }


def preload_items(
    store: EdgeStore, catalogue: list[dict[str, Any]], base: np.ndarray[Any, Any], model: str
) -> float:
    """Store ``catalogue`` as the catalog consumer would, with the rows of ``base`` in turn as
    vectors, each with fresh noise; the seconds it took."""
    started = time.perf_counter()
    vectors = jittered(base, len(catalogue), seed=5, lexical=lexical_width(model))
    for start in range(0, len(catalogue), _CHUNK):
        store.upsert(
            ITEMS,
            [
                StoredPoint(
                    item["item_id"],
                    {
                        "item_id": item["item_id"],
                        "title": item["title"],
                        "price": item.get("price"),
                        "in_stock": True,
                        "categories": item.get("categories", []),
                        "content_hash": item["item_id"],  # each vector is its own
                        "model": model,
                    },
                    vectors[start + k],
                )
                for k, item in enumerate(catalogue[start : start + _CHUNK])
            ],
        )
    return time.perf_counter() - started


def _running(
    consumers: list[BatchConsumer[Any, Any]],
) -> tuple[threading.Event, list[threading.Thread]]:
    stop = threading.Event()
    threads = [threading.Thread(target=c.run, args=(stop,), daemon=True) for c in consumers]
    for t in threads:
        t.start()
    return stop, threads


def rank_search(settings: Settings) -> str:
    """The profiles' search ``RECSTREAM_RANK_PRECISION`` resolves to on this machine."""
    return "bfloat16" if screened(settings.rank_precision) else "float32"


def _product_threads() -> tuple[int, int]:
    """torch's and numpy's BLAS thread counts in this process."""
    blas = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    return torch.get_num_threads(), max(blas, default=1)


def _set_product_threads(torch_threads: int, blas_threads: int) -> None:
    torch.set_num_threads(torch_threads)
    threadpool_limits(limits=blas_threads, user_api="blas")


def run(
    settings: Settings,
    items: int,
    catalog_events_count: int,
    users: int,
    events: int,
    load_fraction: float,
    latency_s: float,
    max_seconds: float,
    out_dir: Path,
    name: str | None = None,
    progress: Callable[[str], None] = lambda text: print(text, flush=True),
) -> dict[str, Any]:
    name = name or f"{NAME}-{items}"
    catalogue = sample_items(items)
    workdir = tempfile.mkdtemp(prefix="recstream-bench-behaviour-")
    try:
        with LoadMonitor() as load, EmbeddedBroker() as broker:
            s = on_embedded(settings, broker.bootstrap, workdir)
            # the generated shoppers' events are dated from a fixed day, maybe after today
            s = s.model_copy(update={"history_max_future_s": 1e12})
            threads_before = _product_threads()  # before an encoder on torch sets its own
            encoder = load_encoder(s)
            store = EdgeStore(s.qdrant_path)
            ensure_collections(store, encoder.dim, lexical_width(encoder.name))
            producer = Producer(producer_config(s))
            try:
                # 1. the catalog path's drain
                indexed = catalogue[:catalog_events_count]
                progress(f"  catalog: {len(indexed):,} items through the catalog consumer ...")
                [catalog] = build_consumers(s, "catalog", store, encoder)
                ensure_topics(s, catalog.topics)
                neighbours = Arrivals(s, s.topic_neighbours).start()
                stop, threads = _running([catalog])
                try:
                    evs = catalog_events(indexed, _START)
                    catalog_rate = _throughput(
                        producer, s.topic_items, evs, neighbours, max_seconds
                    )
                finally:
                    stop.set()
                    for t in threads:
                        t.join(timeout=120)
                    neighbours.close()
                # 2. the rest of the catalogue as vectors
                base = np.stack(
                    [
                        p.vector
                        for p in store.retrieve(
                            ITEMS, [i["item_id"] for i in indexed], with_vectors=True
                        ).values()
                        if p.vector is not None
                    ]
                )
                progress(f"  preloading {len(catalogue) - len(indexed):,} more items ...")
                preload_s = preload_items(store, catalogue[len(indexed) :], base, encoder.name)
                # 3. warm-up histories and the model, with the matrix products' threads of a
                # `recstream run behaviour` process (the catalog consumer took them down to one
                # for the whole process: stream.catalog.index.leave_cores_to_encoder)
                _set_product_threads(*threads_before)
                behaviour, stats = build_consumers(s, "behaviour", store)
                for c in (behaviour, stats):
                    ensure_topics(s, c.topics)
                recommendations = KeyArrivals(s, s.topic_recommendations)
                stop, threads = _running([behaviour, stats])
                try:
                    warm = sample_behaviour(catalogue, users=users, seed=3, events_per_user=(2, 8))
                    progress(f"  warm-up: {len(warm):,} events of {users:,} shoppers ...")
                    warm_rate = _drain(behaviour, producer, s.topic_user_events, warm, max_seconds)
                    progress("  training the model ...")
                    training = train_from_store(s, store)
                    # 4. throughput
                    shoppers = sorted({e["user_id"] for e in warm})
                    ids = [i["item_id"] for i in catalogue]
                    later = _START + timedelta(days=30)
                    bulk = _events(shoppers, ids, events, later, seed=1)
                    progress(f"  throughput: {len(bulk):,} events ...")
                    through = _drain(behaviour, producer, s.topic_user_events, bulk, max_seconds)
                    # 5. latency, one event per shopper
                    rate = load_fraction * through["events_per_s"]
                    count = min(len(shoppers), max(20, round(rate * latency_s)))
                    progress(f"  latency: {count:,} events at {rate:.1f}/s ...")
                    trickle = _events(shoppers, ids, count, later + timedelta(days=1), seed=2)
                    batches = behaviour.progress.batches
                    latency = _latency(
                        producer, s.topic_user_events, trickle, recommendations, rate
                    )
                    latency["batches"] = behaviour.progress.batches - batches
                finally:
                    stop.set()
                    for t in threads:
                        t.join(timeout=120)
                    recommendations.close()
            finally:
                store.close()
                del producer
                gc.collect()  # librdkafka handles close when collected: before the broker stops
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    ratio = through["events_per_s"] / max(catalog_rate["events_per_s"], 1e-9)
    p99 = latency["latency_ms"].get("p99")
    result = new_result(
        NAME,
        model=encoder.name,
        device=encoder.device,
        items=items,
        users=users,
        settings={
            "batch_max_items": s.batch_max_items,
            "batch_max_wait_ms": s.batch_max_wait_ms,
            "recommendations_n": s.recommendations_n,
            "rank_candidates": s.rank_candidates,
            "history_max": s.history_max,
            "rank_precision": s.rank_precision,
            "rank_search": rank_search(s),
            "topic_partitions": s.topic_partitions,
        },
        method={
            "broker": "embedded Tansu (memory storage)",
            "store": "EdgeStore (Qdrant Edge, embedded) in a temporary directory",
            "catalog": f"{catalog_events_count} generated items through the catalog consumer",
            "preload": "the rest of the catalogue: the encoded items' vectors with noise",
            "consumers": "behaviour and item-stats consumers (recstream run behaviour)",
            "throughput": "events / (processed by the behaviour consumer - first publish)",
            "latency": "publish to the arrival of that shopper's next recommendation message, "
            "one event per shopper, producer paced at load x throughput",
            "load_fraction": load_fraction,
        },
        catalog=catalog_rate,
        preload_s=round(preload_s, 1),
        warm_up=warm_rate,
        learned_model={
            "kind": training.model.kind,
            "items": training.model.items,
            "interactions": training.model.interactions,
            "train_s": round(training.seconds, 2),
        },
        throughput=through,
        latency=latency,
        goals={
            "ratio_to_catalog": round(ratio, 2),
            "ratio_goal": GOAL_RATIO,
            "ratio_met": ratio >= GOAL_RATIO,
            "events_per_s": through["events_per_s"],
            "rate_goal": GOAL_RATE,
            "rate_met": through["events_per_s"] >= GOAL_RATE,
            "p99_ms": p99,
            "p99_goal_ms": GOAL_P99_MS,
            "p99_met": p99 is not None and p99 <= GOAL_P99_MS,
        },
        load=load.summary,
    )
    result["paths"] = [str(p) for p in write_outputs(result, name, out_dir, lambda: _plot(result))]
    return result


def _plot(result: dict[str, Any]) -> Any:
    fig, axes = figure(1, 2, width=11.0, height=4.4)
    left, right = axes[0]
    rates = [result["catalog"]["events_per_s"], result["throughput"]["events_per_s"]]
    left.bar(["catalog path", "behaviour path"], rates, color=["0.55", "tab:blue"])
    left.axhline(GOAL_RATIO * rates[0], color="tab:red", linestyle="--", label="10x catalog")
    left.set_ylabel("events/s")
    left.set_title(f"{result['items']:,} items, {result['users']:,} shoppers")
    left.legend(fontsize=8)
    latency = result["latency"]
    if latency["latencies_ms"]:
        latency_cdf(right, latency, GOAL_P99_MS, "publish to the shopper's recommendations, ms")
        right.set_title(f"{latency['measured']} events at {latency['offered_events_per_s']}/s")
    fig.suptitle("Shopper behaviour on the embedded broker and store")
    return fig


def summary(result: dict[str, Any]) -> str:
    c, t, g, lat = result["catalog"], result["throughput"], result["goals"], result["latency"]
    ms = lat["latency_ms"]
    return "\n".join(
        [
            f"catalog path:   {c['events_per_s']:>8.1f} events/s ({c['processed']:,} items)",
            f"behaviour path: {t['events_per_s']:>8.1f} events/s ({t['processed']:,}/"
            f"{t['events']:,} events in {t['s']} s, {t['batches']} batches; goal >= "
            f"{GOAL_RATE:.0f}: {'met' if g['rate_met'] else 'NOT met'})",
            f"ratio:          {g['ratio_to_catalog']:.1f}x the catalog path (goal >= "
            f"{GOAL_RATIO:.0f}x: {'met' if g['ratio_met'] else 'NOT met'})",
            f"latency at {lat['offered_events_per_s']}/s: p50 {ms.get('p50')} ms, p95 "
            f"{ms.get('p95')} ms, p99 {ms.get('p99')} ms ({lat['measured']}/{lat['events']} "
            f"events; goal p99 <= {GOAL_P99_MS:.0f} ms: {'met' if g['p99_met'] else 'NOT met'})",
            f"model: {result['learned_model']}",
            f"load: {result['load']}",
        ]
    )
