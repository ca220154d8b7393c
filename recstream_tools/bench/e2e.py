"""``recstream bench e2e``: events/s from ``catalog.items`` to ``items.neighbours``, and latency.

The pipeline is the production catalog consumer on the embedded broker and the embedded store
(as ``recstream demo`` wires them), fed generated sample items. Three phases, one process:

1. encoder only: the same encoder encodes a sample of the items' texts in consumer-sized
   batches, the ceiling the pipeline is compared with (measured again after the pipeline's
   phases; the ceiling is the mean of the two);
2. throughput: ``--items`` item.created events are published at once; the rate is items over
   the time from the first publish to the arrival of the last item's own neighbour list;
3. latency: new items are published at a steady ``--load`` fraction of that rate (the producer
   paces itself); each event's latency is from just before its publish at the producer to the
   arrival of its own list (matched by item id and item_version) at a reader assigned to the
   output topic.
"""

from __future__ import annotations

import gc
import json
import shutil
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from encoders import Encoder, load_encoder
from encoders.text import item_text
from recstream_tools.bench.arrivals import Arrivals, ListId
from recstream_tools.bench.queryload import QueryLoad
from recstream_tools.bench.report import (
    LoadMonitor,
    figure,
    latency_cdf,
    median,
    new_result,
    percentiles,
    write_outputs,
)
from recstream_tools.broker import EmbeddedBroker, on_embedded
from recstream_tools.sample_catalog import catalog_events, sample_items
from schemas.catalog import Item
from stream.kafka.config import producer_config
from stream.kafka.topics import ensure_topics
from stream.runner import build_consumers
from stream.settings import Settings
from stream.store.edge import EdgeStore

NAME = "e2e"
GOAL_SHARE = 0.8
GOAL_P99_MS = 250.0
_START = datetime(2026, 11, 22, 10, tzinfo=UTC)
_LATENCY_MAX_EVENTS = 20_000


def _encoder_rate(encoder: Encoder, texts: list[str], batch: int) -> dict[str, Any]:
    """Texts/s of the encoder alone, in batches the size of the consumer's.

    The median of three passes after an untimed one: the first use of each batch shape costs
    extra (kernel selection), which a long-running consumer has long paid.
    """
    runs = []
    for number in range(4):
        started = time.perf_counter()
        for i in range(0, len(texts), batch):
            encoder.encode(texts[i : i + batch])
        if number:
            runs.append(time.perf_counter() - started)
    elapsed = median(runs)
    rate = round(len(texts) / elapsed, 1)
    return {"texts": len(texts), "s": round(elapsed, 2), "events_per_s": rate}


def _publish(producer: Producer, topic: str, event: dict[str, Any]) -> None:
    item_id = event["item"]["item_id"]
    producer.produce(topic, key=item_id.encode(), value=json.dumps(event).encode())
    producer.poll(0)


def _ids(events: list[dict[str, Any]]) -> list[ListId]:
    return [(e["item"]["item_id"], e["version"]) for e in events]


def _throughput(
    producer: Producer, topic: str, events: list[dict[str, Any]], arrivals: Arrivals, max_s: float
) -> dict[str, Any]:
    started = time.monotonic()
    for event in events:
        _publish(producer, topic, event)
    producer.flush(60)
    published_s = time.monotonic() - started
    wanted = _ids(events)
    arrived = arrivals.wait_for(wanted, started + max_s)
    last = max(arrivals.seen(wanted), default=started)
    elapsed = max(last - started, 1e-9)
    return {
        "events": len(events),
        "processed": arrived,
        "complete": arrived == len(events),
        "publish_s": round(published_s, 2),
        "s": round(elapsed, 2),
        "events_per_s": round(arrived / elapsed, 1),
    }


def _latency(
    producer: Producer,
    topic: str,
    events: list[dict[str, Any]],
    arrivals: Arrivals,
    rate: float,
) -> dict[str, Any]:
    """Publish ``events`` at ``rate``/s, paced; latency of each from publish to its own list."""
    sent: dict[ListId, float] = {}
    started = time.monotonic()
    for number, event in enumerate(events):
        delay = started + number / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent[(event["item"]["item_id"], event["version"])] = time.monotonic()
        _publish(producer, topic, event)
    producer.flush(60)
    duration = time.monotonic() - started
    arrivals.wait_for(list(sent), time.monotonic() + 120)
    latencies = []
    for key, at in sent.items():
        got = arrivals.at(key)
        if got is not None:
            latencies.append((got - at) * 1000)
    return {
        "offered_events_per_s": round(rate, 2),
        "achieved_publish_rate": round(len(events) / duration, 2),
        "events": len(events),
        "measured": len(latencies),
        "missing": len(events) - len(latencies),
        "duration_s": round(duration, 1),
        "latency_ms": {
            **percentiles(latencies),
            "mean": round(sum(latencies) / max(len(latencies), 1), 1),
            "max": round(max(latencies, default=0.0), 1),
        },
        "latencies_ms": [round(v, 1) for v in latencies],
    }


def _pipeline(
    s: Settings,
    encoder: Encoder,
    events: tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]],
    load_fraction: float,
    latency_s: float,
    max_seconds: float,
    query_rate: float = 0.0,
) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]:
    """Run the catalog consumer and measure throughput, then latency when throughput completed;
    with ``query_rate``, the HTTP API answers similar-item requests at that rate all along.

    Everything holding a Kafka client is local here, so it is gone before the broker stops.
    """
    warm, bulk, later = events
    store = EdgeStore(s.qdrant_path)
    [consumer] = build_consumers(s, "catalog", store, encoder)
    ids = [e["item"]["item_id"] for e in [warm, *bulk]]
    queries = QueryLoad(s, store, encoder, ids, query_rate) if query_rate > 0 else None
    ensure_topics(s, consumer.topics)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    arrivals = Arrivals(s, s.topic_neighbours).start()
    producer = Producer(producer_config(s))
    try:
        thread.start()
        if queries is not None:
            queries.start()
        _publish(producer, s.topic_items, warm)
        producer.flush(30)
        if arrivals.wait_for(_ids([warm]), time.monotonic() + 120) != 1:
            raise RuntimeError("the consumer produced no list for the warm-up event")
        print(f"  throughput: {len(bulk):,} events ...", flush=True)
        batches = consumer.progress.batches
        through = _throughput(producer, s.topic_items, bulk, arrivals, max_seconds)
        through["batches"] = consumer.progress.batches - batches
        if not through["complete"]:
            return through, None, queries.stop() if queries else None
        rate = load_fraction * through["events_per_s"]
        count = min(len(later), max(20, round(rate * latency_s)))
        print(f"  latency: {count} events at {rate:.1f}/s ...", flush=True)
        batches = consumer.progress.batches
        latency = _latency(producer, s.topic_items, later[:count], arrivals, rate)
        latency["batches"] = consumer.progress.batches - batches
        return through, latency, queries.stop() if queries else None
    finally:
        if queries is not None:
            queries.stop()
        stop.set()
        thread.join(timeout=300)
        arrivals.close()
        store.close()


def run(
    settings: Settings,
    items: int,
    load_fraction: float,
    latency_s: float,
    max_seconds: float,
    encoder_sample: int,
    out_dir: Path,
    name: str | None = None,
    query_rate: float = 0.0,
) -> dict[str, Any]:
    name = name or f"{NAME}-{items}" + (f"-queries-{query_rate:g}" if query_rate > 0 else "")
    catalogue = sample_items(1 + items + _LATENCY_MAX_EVENTS)
    events = catalog_events(catalogue, _START)
    warm, bulk, later = events[0], events[1 : 1 + items], events[1 + items :]
    workdir = tempfile.mkdtemp(prefix="recstream-bench-e2e-")
    try:
        with LoadMonitor() as load, EmbeddedBroker() as broker:
            s = on_embedded(settings, broker.bootstrap, workdir)
            encoder = load_encoder(s)
            texts = [item_text(Item.model_validate(e["item"])) for e in bulk[:encoder_sample]]
            print(f"  encoder alone on {len(texts):,} item texts ...", flush=True)
            before = _encoder_rate(encoder, texts, s.batch_max_items)
            through, latency, queries = _pipeline(
                s, encoder, (warm, bulk, later), load_fraction, latency_s, max_seconds, query_rate
            )
            print("  encoder alone again ...", flush=True)
            after = _encoder_rate(encoder, texts, s.batch_max_items)
            gc.collect()  # librdkafka handles close when collected: before the broker stops
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    # the encoder alone, before and after the pipeline: single passes here swing by ~10%
    alone = {
        "texts": before["texts"],
        "events_per_s": round((before["events_per_s"] + after["events_per_s"]) / 2, 1),
        "before": before,
        "after": after,
    }
    share = through["events_per_s"] / alone["events_per_s"]
    p99 = latency["latency_ms"].get("p99") if latency else None
    result = new_result(
        NAME,
        model=encoder.name,
        device=encoder.device,
        precision=getattr(encoder, "precision", None),
        items=items,
        settings={
            "batch_max_items": s.batch_max_items,
            "batch_max_tokens": s.batch_max_tokens,
            "batch_max_wait_ms": s.batch_max_wait_ms,
            "encoder_max_tokens": getattr(encoder, "max_tokens", s.encoder_max_tokens),
            "encoder_runtime": encoder.runtime,
            "encoder_quantize": s.encoder_quantize,
            "topic_partitions": s.topic_partitions,
            "neighbours_k": s.neighbours_k,
            "neighbour_search": s.neighbour_search,
        },
        method={
            "broker": "embedded Tansu (memory storage)",
            "store": "EdgeStore (Qdrant Edge, embedded) in a temporary directory",
            "items": "generated sample items (recstream_tools.sample_catalog), item.created, "
            "version 1",
            "throughput": "items / (last item's own list arrived - first publish)",
            "latency": "publish (producer side) to first arrival of the item's own list at a "
            "reader assigned to the output topic; producer paced at load x throughput",
            "load_fraction": load_fraction,
            "max_seconds": max_seconds,
        },
        encoder_only=alone,
        throughput=through,
        latency=latency,
        queries=queries,
        goals={
            "e2e_share_of_encoder": round(share, 3),
            "e2e_share_goal": GOAL_SHARE,
            "e2e_share_met": share >= GOAL_SHARE,
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
    alone = result["encoder_only"]["events_per_s"]
    e2e = result["throughput"]["events_per_s"]
    left.bar(["encoder only", "end to end"], [alone, e2e], color=["0.55", "tab:blue"])
    left.axhline(GOAL_SHARE * alone, color="tab:red", linestyle="--", label="80% of encoder")
    left.set_ylabel("events/s")
    t = result["throughput"]
    left.set_title(f"{t['processed']:,} items{'' if t['complete'] else ' (time budget hit)'}")
    left.legend(fontsize=8)
    latency = result["latency"]
    if latency and latency["latencies_ms"]:
        latency_cdf(right, latency, GOAL_P99_MS, "publish to own neighbour list, ms")
        right.set_title(
            f"{latency['measured']} events at {latency['offered_events_per_s']}/s "
            f"(wait {result['settings']['batch_max_wait_ms']} ms)"
        )
    else:
        right.text(0.1, 0.5, "no latency phase (throughput run did not complete)")
    fig.suptitle(f"End to end on the embedded broker and store, {result['items']:,} items")
    return fig


def summary(result: dict[str, Any]) -> str:
    t, a, g = result["throughput"], result["encoder_only"], result["goals"]
    lines = [
        f"encoder only:  {a['events_per_s']:>8.1f} events/s ({a['texts']} texts; before "
        f"{a['before']['events_per_s']}, after {a['after']['events_per_s']})",
        f"end to end:    {t['events_per_s']:>8.1f} events/s ({t['processed']:,}/{t['events']:,} "
        f"items in {t['s']} s{'' if t['complete'] else ', time budget hit'}, "
        f"{t['batches']} batches)",
        f"share:         {g['e2e_share_of_encoder']:.0%} of encoder only "
        f"(goal >= {GOAL_SHARE:.0%}: {'met' if g['e2e_share_met'] else 'NOT met'})",
    ]
    latency = result["latency"]
    if latency:
        ms = latency["latency_ms"]
        lines.append(
            f"latency at {latency['offered_events_per_s']}/s: p50 {ms.get('p50')} ms, "
            f"p95 {ms.get('p95')} ms, p99 {ms.get('p99')} ms, max {ms['max']} ms "
            f"({latency['measured']}/{latency['events']} events; goal p99 <= {GOAL_P99_MS:.0f} "
            f"ms: {'met' if g['p99_met'] else 'NOT met'})"
        )
    queries = result.get("queries")
    if queries:
        ms = queries["latency_ms"]
        lines.append(
            f"queries beside: {queries['requests']} x {queries['endpoint']} at "
            f"{queries['rate_per_s']:g}/s, statuses {queries['statuses']}: p50 {ms.get('p50')} "
            f"ms, p99 {ms.get('p99')} ms"
        )
    lines.append(f"load: {result['load']}")
    return "\n".join(lines)
