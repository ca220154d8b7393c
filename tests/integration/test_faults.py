"""Faults injected for real: a store that goes down, deliveries that fail, SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest
from faults import FlakyProducer, FlakyStore
from kit import (
    RunningConsumers,
    assert_lists_match_brute_force,
    committed_count,
    event_bytes,
    final_lists,
    publish,
    settings_env,
    upsert_event,
    wait_for,
)

from encoders import Encoder
from recstream_tools.sample_catalog import sample_items
from stream.catalog.processor import CatalogConsumer, CatalogProcessor
from stream.kafka.inspect import read_topic
from stream.settings import Settings
from stream.store.edge import EdgeStore

pytestmark = pytest.mark.integration


def _items_events(n: int, seed: int) -> list[tuple[bytes, bytes]]:
    return [event_bytes(upsert_event(i, 1, "item.created")) for i in sample_items(n, seed=seed)]


def test_store_outage_pauses_commits_nothing_and_resumes(
    make_settings: Callable[..., Settings], encoder: Encoder
) -> None:
    """While the store fails, the consumer retries with backoff, pauses its partitions (what it
    holds stays within one batch), publishes and commits nothing; when the store is back it
    resumes and every list is right."""
    settings = make_settings(retry_backoff_ms=50, retry_max_backoff_ms=400, batch_max_items=32)
    events = _items_events(120, seed=51)
    store = FlakyStore(EdgeStore(settings.qdrant_path))
    consumer = CatalogConsumer(settings, CatalogProcessor(settings, encoder, store))
    try:
        with RunningConsumers([consumer]) as running:
            publish(settings, settings.topic_items, events[:40])
            running.wait_caught_up()
            outputs_before = len(read_topic(settings, settings.topic_neighbours))

            store.failing.set()
            publish(settings, settings.topic_items, events[40:])
            wait_for(lambda: consumer.paused and store.failures >= 5, what="retries while paused")
            time.sleep(2.0)
            assert consumer.paused
            assert consumer.buffered <= settings.batch_max_items
            assert committed_count(settings, consumer.group, consumer.topic) == 40
            assert len(read_topic(settings, settings.topic_neighbours)) == outputs_before

            store.failing.clear()
            running.wait_caught_up()
            assert not consumer.paused
        assert_lists_match_brute_force(final_lists(settings), store.inner, settings.neighbours_k)
    finally:
        store.close()


def test_failed_deliveries_are_retried_and_never_committed(
    make_settings: Callable[..., Settings], encoder: Encoder
) -> None:
    """When the broker does not acknowledge the outputs (real librdkafka delivery timeouts),
    the batch's offsets stay uncommitted; once deliveries work again everything is published
    and committed, and the lists are right."""
    settings = make_settings(retry_backoff_ms=50, retry_max_backoff_ms=400, batch_max_items=32)
    events = _items_events(60, seed=52)
    store = EdgeStore(settings.qdrant_path)
    processor = CatalogProcessor(settings, encoder, store)
    consumer = CatalogConsumer(settings, processor)
    consumer._producer_factory = FlakyProducer  # type: ignore[assignment]
    FlakyProducer.failing.set()
    try:
        with RunningConsumers([consumer]) as running:
            publish(settings, settings.topic_items, events)
            wait_for(lambda: consumer.paused, what="a failed delivery")
            time.sleep(2.0)
            assert committed_count(settings, consumer.group, consumer.topic) == 0
            FlakyProducer.failing.clear()
            running.wait_caught_up()
        assert_lists_match_brute_force(final_lists(settings), store, settings.neighbours_k)
    finally:
        FlakyProducer.failing.clear()
        store.close()


def _publish_paced(
    settings: Settings,
    events: list[tuple[bytes, bytes]],
    chunk: int,
    pause_s: float,
    acked: list[int],
) -> None:
    """``events`` in chunks of ``chunk`` every ``pause_s``; each chunk's acknowledged count is
    appended to ``acked`` (a failure in this thread would otherwise go unseen)."""
    for start in range(0, len(events), chunk):
        acked.append(publish(settings, settings.topic_items, events[start : start + chunk]))
        time.sleep(pause_s)


def test_sigterm_finishes_the_batch_commits_and_exits_zero(
    make_settings: Callable[..., Settings], encoder: Encoder
) -> None:
    """A `recstream run catalog` process that gets SIGTERM mid-stream exits 0 within the
    shutdown deadline, having committed only what it finished; a restart completes the rest
    and every list is right."""
    settings = make_settings(batch_max_items=16, shutdown_timeout_s=20)
    # published at a pace over ~15 s, so that SIGTERM lands mid-stream however fast the
    # machine: published at once, 3,000 were once all done before the first lists were read
    events = _items_events(3_000, seed=53)
    acked: list[int] = []
    publisher = threading.Thread(
        target=_publish_paced, args=(settings, events, 100, 0.5, acked), name="paced-publisher"
    )
    command = [sys.executable, "-m", "stream.cli", "run", "catalog"]
    proc = subprocess.Popen(command, env=settings_env(settings), stderr=subprocess.PIPE, text=True)
    publisher.start()
    try:
        wait_for(
            lambda: len(read_topic(settings, settings.topic_neighbours)) > 20,
            timeout_s=120,
            what="first lists",
        )
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        rc = proc.wait(timeout=60)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
        publisher.join()
    _, stderr = proc.communicate()
    assert sum(acked) == len(events), "every event reached the topic"
    assert rc == 0, stderr[-2000:]
    assert '"consumer.stopped"' in stderr
    done = committed_count(settings, settings.catalog_group(), settings.topic_items)
    print(f"SIGTERM to exit: {took:.1f}s, {done}/{len(events)} committed")
    assert 0 < done < len(events)

    store = EdgeStore(settings.qdrant_path)
    try:
        with RunningConsumers(
            [CatalogConsumer(settings, CatalogProcessor(settings, encoder, store))]
        ) as running:
            running.wait_caught_up()
        assert_lists_match_brute_force(final_lists(settings), store, settings.neighbours_k)
    finally:
        store.close()
