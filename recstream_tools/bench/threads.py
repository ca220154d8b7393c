"""``recstream bench threads``: the embedded store's calls beside a thread running Python.

A consumer process runs several threads: the consumers' loops, the catalog's encoder and the
clusters' worker, the HTTP server. Qdrant Edge's binding lets go of the interpreter lock many
times while it converts points, payloads and records; each time, a thread running Python takes
the lock and may keep it for the whole switch interval. Each store call here runs alone, then
while a second thread runs pure Python, at each of the switch intervals given (Python's own is
5 ms); the second thread's own rate says what a shorter interval costs it.
The calls are the pipeline's: an upsert of 256 item-stats points (the six stored fields, a
co-occurrence text of 150 items among them), an upsert of 256 items (a catalogue item's payload,
384-number vectors) and a read of the 256 item-stats points back.
"""

from __future__ import annotations

import functools
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from recstream_tools.bench.report import LoadMonitor, figure, median, new_result, write_outputs
from stream.collections import ITEM_STATS, ITEMS, ensure_collections
from stream.ranking.stats import stored_stats
from stream.store import StoredPoint
from stream.store.edge import EdgeStore

NAME = "threads"
T = TypeVar("T")
POINTS = 256
DIM = 384


def _stats_points() -> list[StoredPoint]:
    """Item statistics as the item-stats consumer stores them (:func:`stored_stats`)."""
    co = {f"item-{i:05d}": round(1.0 / (i + 1), 6) for i in range(150)}
    record = {"pop": 3.5, "co": co, "ref": "2026-12-05T10:00:00+00:00", "pop_key": 1.25}
    one = np.ones(1, dtype=np.float32)
    return [
        StoredPoint(
            f"item-{n:05d}",
            stored_stats({"item_id": f"item-{n:05d}", **record, "upto": {"user.events/0": n}}),
            one,
        )
        for n in range(POINTS)
    ]


def _item_points() -> list[StoredPoint]:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((POINTS, DIM)).astype(np.float32)
    return [
        StoredPoint(
            f"new-{n:05d}",
            {
                "title": f"Cotton towel {n}, 50 x 100 cm",
                "brand": "Acme",
                "categories": ["Home", "Bath", "Towels"],
                "price": 9.5 + n,
                "in_stock": True,
                "version": 3,
                "model": "all-MiniLM-L6-v2",
                "lists_pending": True,
                "written_at": 1_764_900_000.0 + n,
            },
            vectors[n],
        )
        for n in range(POINTS)
    ]


def _spin(stop: threading.Event, counted: list[int]) -> None:
    n = 0
    while not stop.is_set():
        for _ in range(1_000):
            n += 1
    counted.append(n)


def _timed(call: Callable[[], object], seconds: float) -> float:
    """Median ms a call over ``seconds`` (at least 3 calls)."""
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 3:
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return median(times)


def _with_busy_thread(body: Callable[[], T]) -> tuple[T, float]:
    """What ``body`` returns, run while another thread runs Python, and that thread's rate
    meanwhile (M steps/s)."""
    stop, counted = threading.Event(), list[int]()
    busy = threading.Thread(target=_spin, args=(stop, counted))
    started = time.perf_counter()
    busy.start()
    try:
        out = body()
    finally:
        stop.set()
        busy.join()
    return out, counted[0] / (time.perf_counter() - started) / 1e6


def run(
    seconds: float, out_dir: Path, intervals_ms: Sequence[float] = (5.0, 1.0), name: str = NAME
) -> dict[str, Any]:
    before = sys.getswitchinterval()
    rows: list[dict[str, Any]] = []
    prefix = "recstream-bench-threads-"
    with LoadMonitor() as load, tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        store = EdgeStore(Path(tmp))
        try:
            ensure_collections(store, DIM)
            stats, items = _stats_points(), _item_points()
            store.upsert(ITEM_STATS, stats)
            keys = [p.key for p in stats]
            calls: dict[str, Callable[[], object]] = {
                f"upsert {POINTS} item-stats points": lambda: store.upsert(ITEM_STATS, stats),
                f"upsert {POINTS} items": lambda: store.upsert(ITEMS, items),
                f"retrieve {POINTS} item-stats points": lambda: store.retrieve(ITEM_STATS, keys),
            }
            for interval_ms in intervals_ms:
                sys.setswitchinterval(interval_ms / 1000)
                _, spin_alone = _with_busy_thread(lambda: time.sleep(seconds))
                for call_name, call in calls.items():
                    alone = _timed(call, seconds)
                    beside, spin = _with_busy_thread(functools.partial(_timed, call, seconds))
                    rows.append(
                        {
                            "switch_interval_ms": interval_ms,
                            "call": call_name,
                            "alone_ms": round(alone, 2),
                            "beside_busy_ms": round(beside, 2),
                            "slowdown": round(beside / alone, 1),
                            "busy_thread_m_steps_per_s": round(spin, 1),
                            "busy_thread_alone_m_steps_per_s": round(spin_alone, 1),
                        }
                    )
        finally:
            store.close()
            sys.setswitchinterval(before)
    result = new_result(
        NAME,
        model="none (store calls only)",
        device="cpu",
        method={
            "store": "EdgeStore (Qdrant Edge, embedded), one process",
            "busy": "a second thread counting in a Python loop (no calls that let go of the lock)",
            "timing": f"median of the calls in {seconds} s per case, at least 3",
        },
        table=rows,
        load=load.summary,
    )
    result["paths"] = [str(p) for p in write_outputs(result, name, out_dir, lambda: _plot(result))]
    return result


def _plot(result: dict[str, Any]) -> Any:
    fig, axes = figure()
    ax = axes[0][0]
    rows = result["table"]
    calls = list(dict.fromkeys(r["call"] for r in rows))
    intervals = sorted({r["switch_interval_ms"] for r in rows}, reverse=True)
    width = 0.8 / (len(intervals) + 1)
    x = np.arange(len(calls))
    alone = [next(r["alone_ms"] for r in rows if r["call"] == c) for c in calls]
    ax.bar(x, alone, width, label="alone")
    for n, interval in enumerate(intervals, start=1):
        beside = [
            next(
                r["beside_busy_ms"]
                for r in rows
                if r["call"] == c and r["switch_interval_ms"] == interval
            )
            for c in calls
        ]
        ax.bar(x + n * width, beside, width, label=f"beside a busy thread, {interval:g} ms switch")
    ax.set_xticks(x + width * len(intervals) / 2, calls, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("ms a call (median)")
    ax.legend(fontsize=8)
    ax.set_title("Embedded store calls beside a thread running Python")
    return fig


def summary(result: dict[str, Any]) -> str:
    lines = [
        f"{'switch':>7} {'call':34} {'alone ms':>9} {'beside ms':>10} {'x':>6} {'busy M/s':>9}"
    ]
    for r in result["table"]:
        lines.append(
            f"{r['switch_interval_ms']:>5g}ms {r['call']:34} {r['alone_ms']:>9.2f} "
            f"{r['beside_busy_ms']:>10.2f} {r['slowdown']:>6.1f} "
            f"{r['busy_thread_m_steps_per_s']:>5.1f}/{r['busy_thread_alone_m_steps_per_s']:.1f}"
        )
    lines.append(f"load: {result['load']}")
    return "\n".join(lines)
