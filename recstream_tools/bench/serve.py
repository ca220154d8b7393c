"""``recstream bench serve``: the HTTP API's latency per endpoint at a steady request rate.

For each catalogue size: generated sample items stored as the catalog consumer would (the first
``base_items`` encoded by the real encoder, the rest their vectors with fresh noise), shoppers'
generated histories stored as the behaviour consumer would, their item statistics folded and the
model trained through the consumers' own code; then the API (``recstream serve``'s) on a free
port, and one client sending requests at ``rate`` per second for ``seconds`` per endpoint. A
request's latency counts from the moment it was due, so a slow answer delays the ones behind it
and shows in their latency too.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from encoders import Encoder, load_encoder
from encoders.hybrid import lexical_width
from encoders.text import item_text
from recstream_tools.bench.behaviour import preload_items
from recstream_tools.bench.report import (
    LoadMonitor,
    figure,
    new_result,
    paced,
    percentiles,
    write_outputs,
)
from recstream_tools.evaluation.harness import retrain, store_item_stats
from recstream_tools.sample_behaviour import sample_behaviour
from recstream_tools.sample_catalog import sample_items
from schemas.behaviour import parse_behaviour_event
from schemas.catalog import Item
from stream.collections import USERS, ensure_collections
from stream.http.app import build_app
from stream.http.queries import Queries
from stream.http.server import HttpServer
from stream.ranking.profile import Interaction, history_to_payload
from stream.settings import Settings
from stream.store import StoredPoint
from stream.store.edge import EdgeStore

NAME = "serve"
GOALS_MS = {"similar": 20.0, "similar_filtered": 20.0, "recommendations": 100.0, "search": 100.0}
"""The issue's p99 goals at 50 requests/s."""
_QUERIES = (
    "red running shoes",
    "stainless steel kettle",
    "wooden toy train",
    "garden hose",
    "usb-c charger",
    "night cream with hyaluronic acid",
)
_START = datetime(2026, 11, 22, 10, tzinfo=UTC)


def _histories(events: list[dict[str, Any]]) -> dict[str, list[Interaction]]:
    out: dict[str, list[Interaction]] = {}
    for e in events:
        event = parse_behaviour_event(None, json.dumps(e).encode())  # as the consumer reads it
        out.setdefault(event.user_id, []).append(Interaction.of(event))
    return {u: sorted(h, key=lambda i: (i.at, i.event_id)) for u, h in out.items()}


def _fill(
    s: Settings, store: EdgeStore, encoder: Encoder, items: int, users: int, base_items: int
) -> tuple[list[str], list[str], float]:
    """The catalogue, histories, statistics and model; item ids, user ids, seconds."""
    started = time.perf_counter()
    catalogue = sample_items(items)
    texts = [item_text(Item.model_validate(i)) for i in catalogue[:base_items]]
    base = encoder.encode(texts)
    ensure_collections(store, encoder.dim, lexical_width(encoder.name))
    preload_items(store, catalogue, base, encoder.name)
    history = _histories(sample_behaviour(catalogue, users=users, start=_START))
    store_item_stats(store, history, s, workers=1)
    retrain(store, history, s)
    placeholder = np.zeros(encoder.dim, dtype=np.float32)
    placeholder[0] = 1.0
    store.upsert(
        USERS,
        [
            StoredPoint(u, {"user_id": u, "history": history_to_payload(h)}, placeholder)
            for u, h in history.items()
        ],
    )
    return [i["item_id"] for i in catalogue], sorted(history), time.perf_counter() - started


def _measure_size(
    settings: Settings,
    encoder: Encoder,
    items: int,
    users: int,
    base_items: int,
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="recstream-bench-serve-")
    store = EdgeStore(f"{workdir}/qdrant")
    try:
        s = settings.model_copy(update={"qdrant_path": f"{workdir}/qdrant"})
        print(f"  {items:,} items, {users:,} shoppers: filling the store ...", flush=True)
        item_ids, user_ids, fill_s = _fill(s, store, encoder, items, users, base_items)
        server = HttpServer("127.0.0.1", 0)  # a free port
        queries = Queries(s, store, encoder)
        server.start(build_app(s, store, queries), queries)
        rng = random.Random(3)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=60) as c:
                cases: dict[str, Callable[[], httpx.Response]] = {
                    "similar": lambda: c.get(
                        f"/v1/items/{rng.choice(item_ids)}/similar", params={"k": 10}
                    ),
                    "similar_filtered": lambda: c.get(
                        f"/v1/items/{rng.choice(item_ids)}/similar",
                        params={"k": 10, "in_stock": "true", "max_price": 50},
                    ),
                    "recommendations": lambda: c.get(
                        f"/v1/users/{rng.choice(user_ids)}/recommendations", params={"n": 20}
                    ),
                    "search": lambda: c.post(
                        "/v1/search", json={"query": rng.choice(_QUERIES), "k": 10}
                    ),
                }
                endpoints = {}
                for name, send in cases.items():
                    for _ in range(5):  # warm: the recommender's copy, the encoder
                        send()
                    print(f"    {name}: {rate:g}/s for {seconds:g} s ...", flush=True)
                    latencies, statuses = paced(send, rate, seconds)
                    endpoints[name] = {
                        "due": int(rate * seconds),
                        "requests": len(latencies),
                        "statuses": statuses,
                        "latency_ms": percentiles(latencies),
                        "goal_p99_ms": GOALS_MS[name],
                    }
        finally:
            server.stop()
        return {"items": items, "users": len(user_ids), "fill_s": round(fill_s, 1), **endpoints}
    finally:
        store.close()
        shutil.rmtree(workdir, ignore_errors=True)


def run(
    settings: Settings,
    sizes: list[int],
    users: int,
    base_items: int,
    rate: float,
    seconds: float,
    out: Path,
    name: str | None = None,
) -> dict[str, Any]:
    name = name or NAME
    encoder = load_encoder(settings)
    with LoadMonitor() as load:
        runs = [
            _measure_size(settings, encoder, n, users, base_items, rate, seconds) for n in sizes
        ]
    result = new_result(
        NAME,
        model=encoder.name,
        device=encoder.device,
        method={
            "server": "the API of `recstream serve` (FastAPI on uvicorn) on 127.0.0.1",
            "store": "EdgeStore (Qdrant Edge, embedded) in a temporary directory, no consumers",
            "client": "one httpx client, requests sent at a steady rate, one at a time",
            "latency": "from when a request was due to its answer (a late one delays the next)",
            "filtered": "in_stock=true and max_price=50",
        },
        rate_per_s=rate,
        seconds_per_endpoint=seconds,
        runs=runs,
        load=load.summary,
    )
    result["paths"] = [str(p) for p in write_outputs(result, name, out, lambda: _plot(result))]
    return result


def _plot(result: dict[str, Any]) -> Any:
    fig, axes = figure()
    ax = axes[0][0]
    names = list(GOALS_MS)
    width = 0.8 / max(len(result["runs"]), 1)
    for k, run in enumerate(result["runs"]):
        xs = [n + k * width for n in range(len(names))]
        ax.bar(xs, [run[e]["latency_ms"]["p99"] for e in names], width, label=f"{run['items']:,}")
    ax.set_xticks([n + width * (len(result["runs"]) - 1) / 2 for n in range(len(names))], names)
    ax.set_ylabel(f"p99 ms at {result['rate_per_s']:g} requests/s")
    ax.legend(title="items", fontsize=8)
    return fig


def summary(result: dict[str, Any]) -> str:
    lines = []
    for run in result["runs"]:
        for name, goal in GOALS_MS.items():
            lat = run[name]["latency_ms"]
            met = "met" if lat["p99"] <= goal else "NOT met"
            lines.append(
                f"{run['items']:>7,} items  {name:<17} p50 {lat['p50']:7.1f}  p95 "
                f"{lat['p95']:7.1f}  p99 {lat['p99']:7.1f} ms (goal <= {goal:g}: {met}) "
                f"{run[name]['requests']}/{run[name]['due']} sent {run[name]['statuses']}"
            )
    return "\n".join(lines)
