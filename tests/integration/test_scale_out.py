"""Several catalog instances over one shared store (``RECSTREAM_LIST_STAGE=topic``): the lists
must end as one instance would leave them.

Three catalog workers and two list workers, each with its own processor, finder, lock and
consumer loop (what separate processes have), in their groups on the embedded broker; the one
store they share is seen by each through :class:`Jittery`, which delays every call by a random
few milliseconds (so the workers' calls interleave and reorder) and can kill its worker at a
chosen call (a process dying mid-batch: nothing after it is written, published or committed; a
new worker takes its place). Creates, price-only updates, text updates and deletes of items with
close texts. At the end, every live item's last list on the topic is the brute-force top k of
the stored vectors, no list names a deleted item, and every deleted item's last record is a
tombstone.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kit import assert_lists_match_brute_force, catalogue_churn, final_lists, publish

from encoders import Encoder
from stream.catalog.owners import ListConsumer, ListProcessor
from stream.catalog.processor import CatalogConsumer, CatalogProcessor
from stream.collections import ITEMS
from stream.kafka.inspect import group_lag
from stream.loop import BatchConsumer
from stream.settings import Settings
from stream.store import VectorStore
from stream.store.edge import EdgeStore

pytestmark = pytest.mark.integration

K = 5


class Killed(Exception):
    """The worker's process is gone (not a store outage: nothing retries it)."""


class Jittery:
    """One worker's view of the shared store: every call late by 0-12 ms, and from call
    ``die_after`` on, none at all."""

    def __init__(self, inner: VectorStore, seed: int, die_after: int | None = None) -> None:
        self.inner = inner
        self.exclusive = False  # other processes write it too
        self.rng = random.Random(seed)
        self.die_after = die_after
        self.calls = 0
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr) or name in ("close", "ensure_collection"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                self.calls += 1
                dead = self.die_after is not None and self.calls > self.die_after
                delay = self.rng.random() * 0.012
            if dead:
                raise Killed(f"killed at store call {self.calls}")
            time.sleep(delay)
            return attr(*args, **kwargs)

        return call


class Workers:
    """Worker threads, each a consumer loop; a killed one is replaced by a new worker."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.running: list[tuple[BatchConsumer[Any, Any], threading.Thread]] = []
        self.killed = 0
        self.failures: list[BaseException] = []

    def start(self, consumer: BatchConsumer[Any, Any], again: Callable[[], None]) -> None:
        def run() -> None:
            try:
                consumer.run(self.stop)
            except Killed:
                self.killed += 1
                again()
            except BaseException as exc:  # the test reports it
                self.failures.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        self.running.append((consumer, thread))
        thread.start()

    def wait_caught_up(self, settings: Settings, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        groups = {(c.group, c.topic) for c, _ in self.running}
        while time.monotonic() < deadline:
            assert not self.failures, self.failures
            if all(group_lag(settings, g, t) == 0 for g, t in groups):
                return
            time.sleep(0.5)
        raise AssertionError("the workers did not catch up")

    def close(self) -> None:
        self.stop.set()
        for _, thread in self.running:
            thread.join(timeout=120)


def test_several_catalog_instances_end_with_exact_lists(
    make_settings: Callable[..., Settings], encoder: Encoder, tmp_path: Path
) -> None:
    settings = make_settings(
        list_stage="topic",
        neighbour_search="store",
        neighbours_k=K,
        topic_partitions=4,
        batch_max_items=4,
        batch_max_wait_ms=20,
    )
    rng = random.Random(2026)
    shared = EdgeStore(tmp_path / "shared")
    workers = Workers()
    seeds = iter(range(1000))

    def catalog_worker(die_after: int | None = None) -> None:
        store = Jittery(shared, next(seeds), die_after)
        processor = CatalogProcessor(settings, encoder, store)
        assert processor.by_topic
        workers.start(CatalogConsumer(settings, processor), catalog_worker)

    def list_worker(die_after: int | None = None) -> None:
        store = Jittery(shared, next(seeds), die_after)
        workers.start(ListConsumer(settings, ListProcessor(settings, store)), list_worker)

    try:
        for die_after in (None, None, 60):
            catalog_worker(die_after)
        for die_after in (None, 45):
            list_worker(die_after)
        listed, burst = catalogue_churn(rng)
        publish(settings, settings.topic_items, listed)
        workers.wait_caught_up(settings)
        publish(settings, settings.topic_items, burst)
        workers.wait_caught_up(settings)
        assert workers.killed == 2, f"{workers.killed} workers killed, expected 2"
    finally:
        workers.close()
    try:
        lists = final_lists(settings)
        live = {p.key for p in shared.scroll(ITEMS)}
        assert_lists_match_brute_force({k: v for k, v in lists.items() if k in live}, shared, K)
        for key, value in lists.items():
            assert key in live or value is None, f"{key} is deleted, its last record is a list"
    finally:
        shared.close()
