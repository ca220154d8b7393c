"""``recstream bench scaling``: the catalog processor's cost per event as the catalogue grows.

For each size the embedded store is preloaded directly (no encoding) with that many items whose
vectors look like real ones: the encoder's vectors of ``--base-items`` generated sample items,
each repeated with a small random jitter (cosine about 0.96 to its original). Every preloaded
item carries the exact top-k list a consumer would have published for it (the in-memory index's
exact search), so the freshness search (which lists does a new item enter?) works as it does in
production. Then
batches of new sample items go through :class:`CatalogProcessor` (receive, process, confirm:
validation, encoding, store writes, neighbour search), timed per event; the model is loaded once,
before any timing.
"""

from __future__ import annotations

import gc
import json
import resource
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from encoders import Encoder, load_encoder
from encoders.hybrid import lexical_width
from encoders.text import item_text
from recstream_tools.bench.report import LoadMonitor, figure, median, new_result, write_outputs
from recstream_tools.sample_catalog import catalog_events, sample_items
from schemas.catalog import Item
from stream.catalog.index import MemoryIndex
from stream.catalog.neighbours import MemoryFinder
from stream.catalog.processor import CatalogProcessor
from stream.collections import ITEMS
from stream.kafka.dlq import LocalMessage
from stream.loop import heap
from stream.settings import Settings
from stream.store import StoredPoint
from stream.store.edge import EdgeStore

NAME = "scaling"
JITTER = 0.3
"""Norm of the noise added to a base vector: cosine 1/sqrt(1 + JITTER^2) ~ 0.96 to it."""
_CHUNK = 1_024
_START = datetime(2026, 11, 22, 10, tzinfo=UTC)
_NEW_SEED = 99

Vectors = npt.NDArray[np.float32]


class TimedEncoder:
    """An Encoder that adds up the time spent in ``encode``."""

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.name, self.dim, self.device = inner.name, inner.dim, inner.device
        self.runtime = inner.runtime
        self.seconds = 0.0

    def encode(self, texts: Sequence[str]) -> Vectors:
        started = time.perf_counter()
        try:
            return self.inner.encode(texts)
        finally:
            self.seconds += time.perf_counter() - started

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)


def jittered(base: Vectors, n: int, seed: int, lexical: int = 0) -> Vectors:
    """``n`` unit vectors: the rows of ``base`` (unit) in turn, each with fresh noise of norm
    ~JITTER (made a chunk at a time: the noise is float64, 3 GB at once for 1,000,000 x 384).
    With ``lexical`` > 0 (hybrid vectors) the noise goes into the model's part only, scaled back
    to its length, and the last ``lexical`` numbers stay the row's own: a text's character
    n-grams, sparse as the store keeps them (noise there would make every item share every
    n-gram with every other)."""
    rng = np.random.default_rng(seed)
    dim = base.shape[1] - lexical
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        rows = base[np.arange(start, stop) % len(base)]
        dense = rows[:, :dim] + rng.normal(0, JITTER / np.sqrt(dim), (stop - start, dim))
        length = np.linalg.norm(rows[:, :dim], axis=1, keepdims=True) if lexical else 1.0
        out[start:stop, :dim] = dense * (length / np.linalg.norm(dense, axis=1, keepdims=True))
        out[start:stop, dim:] = rows[:, dim:]
    return out


def exact_lists(vectors: Vectors, k: int) -> tuple[npt.NDArray[np.int64], Vectors]:
    """Each row's k nearest other rows by cosine, best first, and their scores: exact, by the
    in-memory index's own clustered search (a full product is n x n: hours, and a 1,024-row
    score block 4 GB, at 1,000,000 items), a chunk of rows at a time."""
    n = len(vectors)
    index = MemoryIndex(vectors.shape[1], k, background=False)
    index.reserve(n)
    for start in range(0, n, _CHUNK):
        index.put({str(i): vectors[i] for i in range(start, min(start + _CHUNK, n))})
    index.settle()  # the rows are in cluster order from here: keys name the vectors
    item = np.fromiter(map(int, index.keys), dtype=np.int64, count=n)  # each row's vector
    ids = np.empty((n, k), dtype=np.int64)
    scores = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, _CHUNK):
        own = np.arange(start, min(start + _CHUNK, n), dtype=np.intp)
        found = index.search(index.matrix[own], own, None)
        ids[item[own]] = item[np.stack(found.top_rows)]
        scores[item[own]] = np.stack(found.top_scores)
    return ids, scores


def preload(store: EdgeStore, vectors: Vectors, k: int, model: str) -> float:
    """Upsert ``vectors`` as items ``pre-000000``... with their published lists; seconds taken
    by the upserts (the lists' search is :func:`exact_lists`, timed apart)."""
    ids, scores = exact_lists(vectors, k)
    keys = [f"pre-{i:06d}" for i in range(len(vectors))]
    started = time.perf_counter()
    for start in range(0, len(vectors), _CHUNK):
        points = []
        for i in range(start, min(start + _CHUNK, len(vectors))):
            rounded = [round(float(s), 6) for s in scores[i]]
            payload = {
                "item_id": keys[i],
                "version": 1,
                "occurred_at": _START.isoformat(),
                "title": keys[i],
                "content_hash": keys[i],
                "model": model,
                "nb_ids": [keys[j] for j in ids[i]],
                "nb_scores": rounded,
                "nb_floor": rounded[-1],
            }
            points.append(StoredPoint(keys[i], payload, vectors[i]))
        store.upsert(ITEMS, points)
    store.flush()
    return time.perf_counter() - started


def _time_batches(
    processor: CatalogProcessor, timed: TimedEncoder, events: list[dict[str, Any]], batch: int
) -> list[dict[str, float]]:
    """Per batch: wall ms per event, of which encoding, and lists published per event."""
    rows = []
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        msgs = [
            LocalMessage(start + i, e["item"]["item_id"].encode(), json.dumps(e).encode())
            for i, e in enumerate(chunk)
        ]
        timed.seconds = 0.0
        started = time.perf_counter()
        entries = [processor.receive(m)[0] for m in msgs]
        result = processor.process(entries)
        processor.confirm(result)
        elapsed = time.perf_counter() - started
        rows.append(
            {
                "ms_per_event": 1000 * elapsed / len(chunk),
                "encode_ms_per_event": 1000 * timed.seconds / len(chunk),
                "lists_per_event": result.counts.get("lists", 0) / len(chunk),
            }
        )
    return rows


def measure_size(
    settings: Settings,
    timed: TimedEncoder,
    base: Vectors,
    size: int,
    new_events: list[dict[str, Any]],
    batch: int,
    optimize: bool,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="recstream-bench-scaling-") as tmp:
        store = EdgeStore(Path(tmp))
        try:
            processor = CatalogProcessor(settings, timed, store)
            started = time.perf_counter()
            vectors = jittered(base, size, seed=size, lexical=lexical_width(timed.name))
            upsert_s = preload(store, vectors, settings.neighbours_k, timed.name)
            preload_s = time.perf_counter() - started
            del vectors  # the store holds them now
            optimize_s = None
            if optimize:
                started = time.perf_counter()
                store._shard(ITEMS).optimize()  # not exposed by EdgeStore; see store bench
                optimize_s = round(time.perf_counter() - started, 1)
            print(f"  {size:,} items preloaded in {preload_s:.0f} s; timing ...", flush=True)
            heap.prepare()  # as the catalog consumer does when it starts
            warm, rest = new_events[:batch], new_events[batch:]
            _time_batches(processor, timed, warm, batch)  # loads the in-memory copy
            finder = processor.finder
            if isinstance(finder, MemoryFinder):
                # its clusters are made on a worker thread once, after the load: timed, they
                # took a core from the batches (6-17 s at 100,000 items)
                finder.index.settle()
            rows = _time_batches(processor, timed, rest, batch)
            resident = _resident_mb()
        finally:
            gc.unfreeze()
            store.close()
    per_event = [r["ms_per_event"] for r in rows]
    encode = [r["encode_ms_per_event"] for r in rows]
    return {
        "items_in_store": size,
        "preload_s": round(preload_s, 1),
        "upsert_s": round(upsert_s, 1),
        "lists_s": round(preload_s - upsert_s, 1),
        "optimize_s": optimize_s,
        "batches_timed": len(rows),
        "batch_size": batch,
        "ms_per_event": round(median(per_event), 2),
        "encode_ms_per_event": round(median(encode), 2),
        "other_ms_per_event": round(
            median([r["ms_per_event"] - r["encode_ms_per_event"] for r in rows]), 2
        ),
        "lists_per_event": round(median([r["lists_per_event"] for r in rows]), 2),
        # the process's: the in-memory index, the embedded store, the model, the preload's
        # vectors; the peak so far, so sizes run smallest first
        "rss_mb": resident,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "batches": [{k: round(v, 2) for k, v in r.items()} for r in rows],
    }


def _resident_mb() -> int | None:
    """The process's resident memory now (Linux), MB."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return round(pages * resource.getpagesize() / 2**20)


def run(
    settings: Settings,
    sizes: Sequence[int],
    batch: int,
    batches: int,
    base_items: int,
    optimize: bool,
    out_dir: Path,
    name: str = NAME,
    copies: int | None = None,
) -> dict[str, Any]:
    """With ``copies``, each size is preloaded from its first ``size / copies`` base items (at
    least one), so a new item meets as many near neighbours at every size; without it, from all
    ``base_items``, so the catalogue grows denser with its size."""
    with LoadMonitor() as load:
        encoder = load_encoder(settings)
        timed = TimedEncoder(encoder)
        if copies is not None:
            base_items = max(1, max(sizes) // copies)
        base_texts = [item_text(Item.model_validate(i)) for i in sample_items(base_items)]
        print(f"  encoding {len(base_texts):,} base items ...", flush=True)
        base = encoder.encode(base_texts)
        fresh = sample_items(batch * (batches + 1), seed=_NEW_SEED)
        for item in fresh:
            item["item_id"] = "new-" + item["item_id"]
        new_events = catalog_events(fresh, _START)
        rows = [
            measure_size(
                settings,
                timed,
                base if copies is None else base[: max(1, size // copies)],
                size,
                new_events,
                batch,
                optimize,
            )
            for size in sizes
        ]
    first = rows[0]["ms_per_event"]
    for row in rows:
        row["ratio_to_smallest"] = round(row["ms_per_event"] / first, 2)
    ratio = rows[-1]["ratio_to_smallest"]
    result = new_result(
        NAME,
        model=encoder.name,
        device=encoder.device,
        precision=getattr(encoder, "precision", None),
        settings={"neighbour_search": settings.neighbour_search, "batch": batch},
        method={
            "store": "EdgeStore (Qdrant Edge, embedded), "
            + ("optimize() after preloading" if optimize else "never optimised (as the pipeline)"),
            "preloaded_vectors": (
                f"encoder vectors of {base_items} sample items"
                if copies is None
                else f"encoder vectors of size/{copies} sample items (the first of {base_items})"
            )
            + f", repeated with jitter of norm {JITTER} (in the model's part of hybrid vectors; "
            f"the n-grams kept); exact top-{settings.neighbours_k} lists as payload",
            "timed": f"{batches} batches of {batch} new sample items through receive, process "
            "and confirm, after one untimed batch; medians over batches",
            "excludes": "model load, preloading, the copy's load and first clusters",
        },
        table=rows,
        goal={
            "ratio_largest_to_smallest": ratio,
            "goal": "<= 2.0",
            "met": ratio <= 2.0,
        },
        load=load.summary,
    )
    result["paths"] = [str(p) for p in write_outputs(result, name, out_dir, lambda: _plot(result))]
    return result


def _plot(result: dict[str, Any]) -> Any:
    fig, axes = figure(width=7.5, height=4.4)
    ax = axes[0][0]
    rows = result["table"]
    labels = [f"{r['items_in_store']:,} items" for r in rows]
    encode = [r["encode_ms_per_event"] for r in rows]
    other = [r["other_ms_per_event"] for r in rows]
    ax.bar(labels, encode, color="tab:orange", label="encoding")
    ax.bar(labels, other, bottom=encode, color="tab:blue", label="store, neighbour lists, rest")
    for x, r in enumerate(rows):
        ax.text(x, r["ms_per_event"], f"{r['ms_per_event']:.1f} ms", ha="center", va="bottom")
    ax.set_ylabel("ms per event (median over batches)")
    ax.set_title("Catalog processor cost per new item vs items already stored")
    ax.legend(fontsize=8)
    return fig


def summary(result: dict[str, Any]) -> str:
    lines = [
        f"{'items in store':>14} {'ms/event':>9} {'encode':>8} {'other':>8} {'lists/event':>12} "
        f"{'x smallest':>10} {'RSS MB':>7} {'peak MB':>7}"
    ]
    for r in result["table"]:
        lines.append(
            f"{r['items_in_store']:>14,} {r['ms_per_event']:>9.2f} "
            f"{r['encode_ms_per_event']:>8.2f} {r['other_ms_per_event']:>8.2f} "
            f"{r['lists_per_event']:>12.2f} "
            f"{r['ratio_to_smallest']:>10.2f} {r.get('rss_mb') or 0:>7,} {r['peak_rss_mb']:>7,}"
        )
    g = result["goal"]
    lines.append(f"goal {g['goal']}: {'met' if g['met'] else 'NOT met'}")
    lines.append(f"load: {result['load']}")
    return "\n".join(lines)
