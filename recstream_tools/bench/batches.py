"""``recstream bench batches``: what one behaviour batch costs the two behaviour consumers'
processors on their own: no broker, no second thread, one process.

``recstream bench behaviour`` measures the pipeline (both consumers as threads of one process,
the broker, publishing); its numbers move with how the threads share the interpreter and with
the machine's noise, which hides changes of a tenth. This one calls what the consumers call per
batch, in turn, on the embedded store: the behaviour processor's ``process`` and ``confirm``
for ``--batch`` events, then the item-stats processor's ``process`` for the activities that
batch published (decoded as the item-stats consumer decodes them), and times each batch's two
parts, wall clock and this process's CPU time. The catalogue is ``--items`` generated items
stored with random vectors (the behaviour path reads vectors, it never encodes); shoppers'
generated histories are processed first, then the learned model is trained on them, as in
``recstream bench behaviour``; the timed batches are ``--events`` new events of those
shoppers, after one untimed batch.
"""

from __future__ import annotations

import gc
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from encoders.hybrid import vector_dimension, vector_fingerprint
from recstream_tools.bench.behaviour import _START, _events, preload_items, rank_search
from recstream_tools.bench.report import figure, new_result, percentiles, write_outputs
from recstream_tools.sample_behaviour import sample_behaviour
from recstream_tools.sample_catalog import sample_items
from schemas.activity import parse_activity
from schemas.behaviour import parse_behaviour_event
from stream.behaviour.item_stats import ActivityReceived, ItemStatsProcessor
from stream.behaviour.processor import BehaviourProcessor, UserReceived
from stream.collections import ensure_collections
from stream.loop import heap
from stream.ranking.learned import train_from_store
from stream.settings import Settings
from stream.store.edge import EdgeStore

NAME = "behaviour-batches"


class _Pair:
    """The two processors over one store, fed batch by batch."""

    def __init__(self, settings: Settings, store: EdgeStore, dim: int) -> None:
        self.s = settings
        self.behaviour = BehaviourProcessor(settings, store, dim)
        self.stats = ItemStatsProcessor(settings, store, dim)
        self.offset = 0

    def batch(self, events: list[dict[str, Any]]) -> dict[str, float]:
        """One batch through both; the wall and CPU seconds of each part."""
        received: list[Any] = []
        for e in events:
            self.offset += 1
            value = json.dumps(e).encode()
            event = parse_behaviour_event(e["user_id"].encode(), value)
            received.append(UserReceived(event, self.s.topic_user_events, 0, self.offset))
        wall, cpu = time.perf_counter(), time.process_time()
        result = self.behaviour.process(received)
        self.behaviour.confirm(result)
        b_wall, b_cpu = time.perf_counter() - wall, time.process_time() - cpu
        topic = self.s.topic_item_activity()
        activities: list[Any] = [
            ActivityReceived(parse_activity(o.key, o.value))
            for o in result.outputs
            if o.topic == topic
        ]
        wall, cpu = time.perf_counter(), time.process_time()
        size = self.s.stats_batch_max_items
        for start in range(0, len(activities), size):
            self.stats.process(activities[start : start + size])
        return {
            "behaviour_ms": b_wall * 1000,
            "behaviour_cpu_ms": b_cpu * 1000,
            "stats_ms": (time.perf_counter() - wall) * 1000,
            "stats_cpu_ms": (time.process_time() - cpu) * 1000,
            "activities": len(activities),
        }

    def run(self, events: list[dict[str, Any]], size: int) -> list[dict[str, float]]:
        return [self.batch(events[k : k + size]) for k in range(0, len(events), size)]

    def close(self) -> None:
        self.behaviour.close()


def run(
    settings: Settings,
    items: int,
    users: int,
    events: int,
    batch: int,
    out_dir: Path,
    name: str | None = None,
    progress: Callable[[str], None] = lambda text: print(text, flush=True),
) -> dict[str, Any]:
    name = name or f"{NAME}-{items}"
    s = settings.model_copy(update={"history_max_future_s": 1e12})
    dim = vector_dimension(s)
    model = vector_fingerprint(s)[0]
    catalogue = sample_items(items)
    workdir = tempfile.mkdtemp(prefix="recstream-bench-batches-")
    try:
        store = EdgeStore(Path(workdir) / "qdrant")
        try:
            ensure_collections(store, dim)
            base = np.random.default_rng(0).standard_normal((500, dim)).astype(np.float32)
            progress(f"  storing {items:,} items ...")
            preload_items(store, catalogue, base, model)
            pair = _Pair(s, store, dim)
            heap.prepare()  # as a consumer does when it starts
            warm = sample_behaviour(catalogue, users=users, seed=3, events_per_user=(2, 8))
            progress(f"  warm-up: {len(warm):,} events of {users:,} shoppers ...")
            pair.run(warm, batch)
            progress("  training the model ...")
            training = train_from_store(s, store)
            shoppers = sorted({e["user_id"] for e in warm})
            ids = [i["item_id"] for i in catalogue]
            later = _events(shoppers, ids, batch + events, _START + timedelta(days=30), seed=1)
            pair.batch(later[:batch])  # untimed: the model and the copies are read
            progress(f"  timed: {events:,} events in batches of {batch} ...")
            timed = pair.run(later[batch:], batch)
            pair.close()
        finally:
            store.close()
    finally:
        gc.unfreeze()
        shutil.rmtree(workdir, ignore_errors=True)
    full = [t for t in timed if t["activities"]]
    parts = {
        key: {**percentiles([t[key] for t in full], (50, 90)), "mean": _mean(full, key)}
        for key in ("behaviour_ms", "behaviour_cpu_ms", "stats_ms", "stats_cpu_ms")
    }
    per_event = (parts["behaviour_ms"]["mean"] + parts["stats_ms"]["mean"]) / batch
    result = new_result(
        NAME,
        model=model,
        items=items,
        users=users,
        events=events,
        batch=batch,
        rank_search=rank_search(s),
        method={
            "what": "BehaviourProcessor.process + confirm, then ItemStatsProcessor.process of "
            "that batch's activities, in turn, one thread, embedded store, no broker",
            "items": "generated items stored with random vectors of the encoder's length",
            "model": "trained on the warm-up histories before the timed batches",
            "heap": "settled as a consumer's when it starts (stream/loop/heap.py): the "
            "generated catalogue and the store's objects out of the garbage collector's reach",
        },
        learned_model={"kind": training.model.kind, "train_s": round(training.seconds, 2)},
        batches=len(full),
        per_batch=parts,
        events_per_s_serial=round(1000 / per_event, 1) if per_event else None,
        batch_ms=[{k: round(v, 1) for k, v in t.items()} for t in full],
    )
    result["paths"] = [str(p) for p in write_outputs(result, name, out_dir, lambda: _plot(result))]
    return result


def _mean(rows: list[dict[str, float]], key: str) -> float:
    return round(float(np.mean([r[key] for r in rows])), 1) if rows else 0.0


def _plot(result: dict[str, Any]) -> Any:
    fig, axes = figure(1, 1, width=8.0, height=4.2)
    ax = axes[0][0]
    rows = result["batch_ms"]
    ax.plot([r["behaviour_ms"] for r in rows], label="behaviour process + confirm")
    ax.plot([r["stats_ms"] for r in rows], label="item stats process")
    ax.set_xlabel(f"batch of {result['batch']} events")
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)
    ax.set_title(f"{result['items']:,} items, {result['users']:,} shoppers, one thread")
    return fig


def summary(result: dict[str, Any]) -> str:
    b, st = result["per_batch"]["behaviour_ms"], result["per_batch"]["stats_ms"]
    cpu = result["per_batch"]["behaviour_cpu_ms"]
    return "\n".join(
        [
            f"behaviour batch of {result['batch']}: p50 {b['p50']} ms, p90 {b['p90']} ms, mean "
            f"{b['mean']} ms (CPU p50 {cpu['p50']} ms)",
            f"item stats of that batch: p50 {st['p50']} ms, p90 {st['p90']} ms, mean {st['mean']}",
            f"both in turn: {result['events_per_s_serial']} events/s ({result['batches']} batches)",
        ]
    )
