"""``recstream bench freshness``: how soon a new item's own neighbour list is published, at a
steady share of the catalog consumer's drain rate, while the catalogue grows.

The production catalog consumer runs on the embedded broker and store (as ``recstream demo``
wires them), fed items named like real products (:func:`recstream_tools.bench.corpus.
product_items`). Phases, one process:

1. catalogue: ``--catalogue`` items published at once and listed;
2. drain: ``--drain-items`` more published at once; the drain rate is their count over the
   time from the first one's Kafka timestamp to the last own list's;
3. trickle: ``--trickle-rate`` items/s for ``--trickle-seconds``, each alone at an idle
   consumer: where a small batch's time goes (the loop's stages and the catalog's sub-stages);
4. one phase per ``--loads`` share of the drain rate, ``--seconds`` long, paced.

Latency is from each input event's Kafka timestamp (from its delivery report) to the Kafka
timestamp of the first list of that item (item id and version) on ``items.neighbours``, both
stamped on this machine's clock; lists per event count every list published meanwhile (the new
item's own and the lists it entered).
"""

from __future__ import annotations

import gc
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from encoders import load_encoder
from recstream_tools.bench.arrivals import Arrivals, ListId
from recstream_tools.bench.corpus import product_items
from recstream_tools.bench.report import (
    LoadMonitor,
    figure,
    new_result,
    percentiles,
    write_outputs,
)
from recstream_tools.bench.scaling import TimedEncoder
from recstream_tools.broker import EmbeddedBroker, on_embedded
from recstream_tools.sample_catalog import catalog_events
from stream.kafka.config import producer_config
from stream.kafka.topics import ensure_topics
from stream.loop.consumer import BatchConsumer
from stream.runner import build_consumers
from stream.settings import Settings
from stream.store.edge import EdgeStore

NAME = "freshness"
GOALS_P99_MS = {0.5: 250.0, 0.8: 1_000.0}
"""Issue 21's goals: p99 at half the drain rate and at 80% of it."""
_START = datetime(2026, 12, 1, 10, tzinfo=UTC)
_WAIT_S = 120.0
_STAGE_ORDER = ("encode", "store", "lists", "publish", "confirm", "commit")
"""The parts of a batch's finish; ``model`` (the encoder's runs, mostly ahead) is apart."""


class _Publisher:
    """Publishes item events and keeps each one's Kafka timestamp from its delivery report."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic_items
        self.producer = Producer(producer_config(settings))
        self.stamps: dict[ListId, int] = {}
        self.failed = 0

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        key = msg.key()
        if err is not None or key is None:
            self.failed += 1
        else:
            self.stamps[(key.decode(), 1)] = msg.timestamp()[1]

    def send(self, event: dict[str, Any]) -> None:
        key = event["item"]["item_id"].encode()
        self.producer.produce(
            self.topic, key=key, value=json.dumps(event).encode(), on_delivery=self._delivered
        )
        self.producer.poll(0)

    def flush(self) -> None:
        self.producer.flush(60)


def _ids(events: Sequence[dict[str, Any]]) -> list[ListId]:
    return [(e["item"]["item_id"], e["version"]) for e in events]


def _stage_totals(
    consumer: BatchConsumer[Any, Any], model: TimedEncoder
) -> dict[str, tuple[float, int]]:
    progress = consumer.progress
    totals = {k: (d.total_s, d.count) for k, d in dict(progress.stage_seconds).items()}
    totals["batch"] = (progress.batch_seconds.total_s, progress.batch_seconds.count)
    totals["model"] = (model.seconds, 0)
    return totals


def _profile(
    consumer: BatchConsumer[Any, Any],
    model: TimedEncoder,
    before: dict[str, tuple[float, int]],
    events: int,
    outputs: int,
) -> dict[str, Any]:
    """Per batch, the mean ms of each stage over a phase (totals now less ``before``).
    ``model``: the encoder's own runs, mostly ahead of the batch's finish (in ``prepare``),
    where ``encode`` is only what the finish still waited for them."""
    after = _stage_totals(consumer, model)
    batches = after["batch"][1] - before["batch"][1]
    ms = {
        stage: round((total - before.get(stage, (0.0, 0))[0]) * 1000 / max(batches, 1), 2)
        for stage, (total, _) in after.items()
    }
    return {
        "batches": batches,
        "events_per_batch": round(events / max(batches, 1), 2),
        "lists_per_batch": round(outputs / max(batches, 1), 2),
        "ms_per_batch": ms,
    }


def _burst(
    pub: _Publisher, events: Sequence[dict[str, Any]], arrivals: Arrivals, max_s: float
) -> dict[str, Any]:
    """Publish ``events`` at once; items/s from the first event's timestamp to the last list's."""
    started = time.monotonic()
    for event in events:
        pub.send(event)
    pub.flush()
    wanted = _ids(events)
    arrived = arrivals.wait_for(wanted, started + max_s)
    first = min(pub.stamps[w] for w in wanted if w in pub.stamps)
    last = max((s for w in wanted if (s := arrivals.stamp(w)) is not None), default=first)
    elapsed = max(last - first, 1) / 1000
    return {
        "events": len(events),
        "listed": arrived,
        "complete": arrived == len(events),
        "s": round(elapsed, 2),
        "events_per_s": round(arrived / elapsed, 1),
    }


def _steady(
    pub: _Publisher,
    consumer: BatchConsumer[Any, Any],
    model: TimedEncoder,
    events: Sequence[dict[str, Any]],
    arrivals: Arrivals,
    rate: float,
) -> dict[str, Any]:
    """Publish ``events`` paced at ``rate``/s; each one's latency to its own list."""
    stages = _stage_totals(consumer, model)
    lists_before = arrivals.messages
    started = time.monotonic()
    for number, event in enumerate(events):
        delay = started + number / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        pub.send(event)
    pub.flush()
    duration = time.monotonic() - started
    wanted = _ids(events)
    arrivals.wait_for(wanted, time.monotonic() + _WAIT_S)
    time.sleep(0.5)  # the other lists of the last batch, published with its own
    lists = arrivals.messages - lists_before
    latencies = []
    for w in wanted:
        sent, got = pub.stamps.get(w), arrivals.stamp(w)
        if sent is not None and got is not None:
            latencies.append(float(got - sent))
    profile = _profile(consumer, model, stages, len(events), lists)
    mean = sum(latencies) / max(len(latencies), 1)
    # own lists are stamped as the publish starts: what the mean holds besides ``process``
    # is the wait before the batch's finish began (fetching, batching, the model ahead)
    profile["before_finish_ms"] = round(mean - profile["ms_per_batch"].get("process", 0.0), 1)
    return {
        "offered_events_per_s": round(rate, 1),
        "achieved_publish_rate": round(len(events) / duration, 1),
        "events": len(events),
        "measured": len(latencies),
        "missing": len(events) - len(latencies),
        "duration_s": round(duration, 1),
        "lists_per_event": round(lists / max(len(events), 1), 2),
        "latency_ms": {
            **percentiles(latencies),
            "mean": round(mean, 1),
            "max": round(max(latencies, default=0.0), 1),
        },
        "profile": profile,
        "latencies_ms": latencies,
    }


def run(
    settings: Settings,
    catalogue: int,
    drain_items: int,
    loads: Sequence[float],
    seconds: float,
    trickle_rate: float,
    trickle_seconds: float,
    max_seconds: float,
    data: Path,
    out_dir: Path,
    name: str | None = None,
    base_rate: float | None = None,
) -> dict[str, Any]:
    """``base_rate``: items/s the loads are shares of, instead of the drain measured in this
    run (to compare runs, or settings, at the same offered load)."""
    name = name or NAME
    trickle = max(1, round(trickle_rate * trickle_seconds))
    head = 1 + catalogue + drain_items + trickle
    print(f"  reading product names for {head:,} items ...", flush=True)
    items, sources = product_items(head, data)
    workdir = tempfile.mkdtemp(prefix="recstream-bench-freshness-")
    phases: dict[str, Any] = {}
    try:
        with LoadMonitor() as load, EmbeddedBroker() as broker:
            s = on_embedded(settings, broker.bootstrap, workdir)
            encoder = TimedEncoder(load_encoder(s))
            store = EdgeStore(s.qdrant_path)
            [consumer] = build_consumers(s, "catalog", store, encoder)
            ensure_topics(s, consumer.topics)
            stop = threading.Event()
            thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
            arrivals = Arrivals(s, s.topic_neighbours).start()
            pub = _Publisher(s)
            try:
                thread.start()
                events = catalog_events(items, _START)
                warm, rest = events[:1], events[1:]
                pub.send(warm[0])
                pub.flush()
                if arrivals.wait_for(_ids(warm), time.monotonic() + _WAIT_S) != 1:
                    raise RuntimeError("the consumer produced no list for the warm-up event")
                print(f"  catalogue: {catalogue:,} items ...", flush=True)
                phases["catalogue"] = _burst(pub, rest[:catalogue], arrivals, max_seconds)
                print(f"  drain: {drain_items:,} items ...", flush=True)
                bulk = rest[catalogue : catalogue + drain_items]
                phases["drain"] = drain = _burst(pub, bulk, arrivals, max_seconds)
                if not drain["complete"]:
                    raise RuntimeError(f"the drain did not complete in {max_seconds} s")
                rate = base_rate or drain["events_per_s"]
                print(f"  trickle: {trickle} items at {trickle_rate}/s ...", flush=True)
                later = rest[catalogue + drain_items :]
                phases["trickle"] = _steady(
                    pub, consumer, encoder, later[:trickle], arrivals, trickle_rate
                )
                counts = [max(20, round(share * rate * seconds)) for share in loads]
                more, _ = product_items(head + sum(counts), data)
                fresh = catalog_events(more[head:], _START)
                for share, count in zip(loads, counts, strict=True):
                    print(f"  {share:.0%} load: {count:,} items at {share * rate:.1f}/s ...")
                    phase = _steady(pub, consumer, encoder, fresh[:count], arrivals, share * rate)
                    fresh = fresh[count:]
                    phase["load"] = share
                    phase["load_at_end"] = load.snapshot()
                    phases[f"load_{share:g}"] = phase
            finally:
                stop.set()
                thread.join(timeout=300)
                arrivals.close()
                store.close()
                del pub
            gc.collect()  # librdkafka handles close when collected: before the broker stops
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    goals = {}
    for key, phase in phases.items():
        goal = GOALS_P99_MS.get(phase.get("load", -1.0))
        if goal is not None and key.startswith("load_"):
            p99 = phase["latency_ms"].get("p99")
            goals[key] = {"p99_ms": p99, "goal_ms": goal, "met": p99 is not None and p99 <= goal}
    result = new_result(
        NAME,
        model=encoder.name,
        device=encoder.device,
        items_at_end=1 + catalogue + drain_items + trickle + sum(counts),
        sources=sources,
        settings={
            "batch_max_items": s.batch_max_items,
            "batch_max_tokens": s.batch_max_tokens,
            "batch_max_wait_ms": s.batch_max_wait_ms,
            "encoder_runtime": encoder.runtime,
            "topic_partitions": s.topic_partitions,
            "neighbours_k": s.neighbours_k,
            "neighbour_search": s.neighbour_search,
        },
        method={
            "broker": "embedded Tansu (memory storage)",
            "store": "EdgeStore (Qdrant Edge, embedded) in a temporary directory",
            "items": "product names from the shared data (Flipkart, Abt-Buy, Online Retail), "
            "then generated sample items; item.created, version 1",
            "drain": "items / (last own list's Kafka timestamp - first event's)",
            "latency": "own list's Kafka timestamp - the event's Kafka timestamp (delivery "
            "report); producer paced at load x drain rate",
            "lists_per_event": "messages on items.neighbours during the phase / events",
            "profile": "mean ms per batch of the loop's stages (publish, confirm, commit; "
            "process = encode + store + lists) and of the whole finish (batch)",
        },
        arguments={
            "catalogue": catalogue,
            "drain_items": drain_items,
            "loads": list(loads),
            "seconds": seconds,
            "trickle_rate": trickle_rate,
            "trickle_seconds": trickle_seconds,
            "base_rate": base_rate,
        },
        phases=phases,
        goals=goals,
        load=load.summary,
    )
    result["paths"] = [str(p) for p in write_outputs(result, name, out_dir, lambda: _plot(result))]
    return result


def _steady_phases(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(k, p) for k, p in result["phases"].items() if "latency_ms" in p]


def _label(key: str, phase: dict[str, Any]) -> str:
    if key == "trickle":
        return f"trickle {phase['offered_events_per_s']}/s"
    return f"{phase['load']:.0%} load ({phase['offered_events_per_s']}/s)"


def _plot(result: dict[str, Any]) -> Any:
    fig, axes = figure(1, 2, width=12.0, height=4.6)
    left, right = axes[0]
    steady = _steady_phases(result)
    for key, phase in steady:
        values = sorted(phase["latencies_ms"])
        if values:
            ranks = [(i + 1) / len(values) for i in range(len(values))]
            left.plot(
                values, ranks, label=f"{_label(key, phase)}: p99 {phase['latency_ms']['p99']}"
            )
    for share, goal in GOALS_P99_MS.items():
        left.axvline(goal, color="tab:red", linestyle="--", linewidth=0.8)
        left.text(goal, 0.5, f"p99 goal at {share:.0%} ", fontsize=7, color="tab:red", rotation=90)
    left.set_xscale("log")
    left.set_xlabel("event's Kafka timestamp to its own list's, ms (log)")
    left.set_ylabel("fraction of events")
    left.legend(fontsize=7, loc="upper left")
    drain = result["phases"]["drain"]
    left.set_title(
        f"drain {drain['events_per_s']} items/s; {result['items_at_end']:,} items at end"
    )
    bottom = [0.0] * len(steady)
    xs = list(range(len(steady)))
    for stage in _STAGE_ORDER:
        heights = [p["profile"]["ms_per_batch"].get(stage, 0.0) for _, p in steady]
        right.bar(xs, heights, bottom=bottom, label=stage)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    right.set_xticks(
        xs,
        [f"{_label(k, p)}\n{p['profile']['events_per_batch']} events/batch" for k, p in steady],
        fontsize=7,
    )
    right.set_ylabel("ms per batch")
    right.set_title(
        f"where a batch's time goes (wait {result['settings']['batch_max_wait_ms']} ms)"
    )
    right.legend(fontsize=7)
    fig.suptitle("Freshness: new items' own lists, embedded broker and store")
    return fig


def summary(result: dict[str, Any]) -> str:
    phases = result["phases"]
    c, d = phases["catalogue"], phases["drain"]
    lines = [
        f"catalogue: {c['listed']:,}/{c['events']:,} items listed at {c['events_per_s']} items/s",
        f"drain:     {d['events_per_s']} items/s ({d['events']:,} items in {d['s']} s)",
    ]
    for key, phase in _steady_phases(result):
        ms, prof = phase["latency_ms"], phase["profile"]
        goal = result["goals"].get(key)
        verdict = (
            f"; goal p99 <= {goal['goal_ms']:.0f} ms: {'met' if goal['met'] else 'NOT met'}"
            if goal
            else ""
        )
        stages = ", ".join(
            f"{k} {prof['ms_per_batch'][k]}"
            for k in (*_STAGE_ORDER, "batch", "model")
            if k in prof["ms_per_batch"]
        )
        lines.append(
            f"{_label(key, phase)}: p50 {ms.get('p50')} ms, p95 {ms.get('p95')} ms, p99 "
            f"{ms.get('p99')} ms, max {ms['max']} ms ({phase['measured']}/{phase['events']} "
            f"events, {phase['lists_per_event']} lists/event{verdict})\n"
            f"    {prof['batches']} batches, {prof['events_per_batch']} events/batch; "
            f"ms/batch: {stages}; before the finish {prof['before_finish_ms']} ms"
        )
    lines.append(f"load: {result['load']}")
    return "\n".join(lines)
