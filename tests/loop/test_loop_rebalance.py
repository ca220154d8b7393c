"""Rebalances while a member retries a failing batch: two real consumer loops in one group on
the embedded broker (the eager range protocol), one of them with a processor that fails until
told otherwise. What each member writes, and what it fetches, is what the test checks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

import pytest
from confluent_kafka import Producer
from kit import RunningConsumers, wait_for

from stream.kafka.config import producer_config
from stream.kafka.topics import ensure_topics
from stream.loop import BatchConsumer, BatchResult
from stream.settings import Settings
from stream.store import StoreUnavailable

pytestmark = pytest.mark.integration

Event = tuple[int, int]
"""(partition, offset) of a message."""


class Flaky:
    """Writes (records) the events of each batch that goes through; while ``failing`` is set
    every attempt fails as a store outage does."""

    def __init__(self, failing: bool = False) -> None:
        self.failing = threading.Event()
        if failing:
            self.failing.set()
        self.written: list[Event] = []

    def receive(self, msg: object) -> tuple[Event, int]:
        return (msg.partition(), msg.offset()), 1  # type: ignore[attr-defined]

    def process(self, batch: list[Event]) -> BatchResult[None]:
        if self.failing.is_set():
            raise StoreUnavailable("injected: store down")
        self.written.extend(batch)
        return BatchResult()

    def confirm(self, result: BatchResult[None]) -> None: ...

    def close(self) -> None: ...

    def wrote(self, partition: int, offsets: Iterable[int]) -> bool:
        return {(partition, o) for o in offsets} <= set(self.written)


def publish_to(settings: Settings, partitions: dict[int, range]) -> None:
    """Messages at these offsets of each partition of the items topic (published in order)."""
    producer = Producer(producer_config(settings))
    for partition, offsets in partitions.items():
        for o in offsets:
            producer.produce(settings.topic_items, value=f"{o}".encode(), partition=partition)
    assert producer.flush(30) == 0


def members(
    make_settings: Callable[..., Settings], **overrides: object
) -> tuple[Settings, Flaky, Flaky, BatchConsumer[Event, None], BatchConsumer[Event, None]]:
    """Settings for a two-partition topic, and two members A (failing) and B of one group."""
    settings = make_settings(topic_partitions=2, **overrides)
    ensure_topics(settings, {settings.topic_items: {}})
    a, b = Flaky(failing=True), Flaky()
    group, topic = settings.group_id, settings.topic_items
    return (
        settings,
        a,
        b,
        BatchConsumer(settings, a, topic, group),
        BatchConsumer(settings, b, topic, group),
    )


def only(owned: set[tuple[str | None, int | None]]) -> int:
    [(_, partition)] = owned
    assert partition is not None
    return partition


def test_a_member_retrying_through_rebalances_writes_only_what_it_still_owns(
    make_settings: Callable[..., Settings],
) -> None:
    """A owns both partitions and retries a batch of both. B joins: each gets one, A's batch
    holds events of B's partition (y). A must not write them (B writes them; a write from A
    could land after B's newer ones). Then A recovers, and B leaves: y comes back to A, which
    must fetch and write it again (librdkafka keeps y paused from A's retries unless the loop
    resumes it on assignment), so every later message is written."""
    settings, a, b, first, second = members(
        make_settings, retry_backoff_ms=200, retry_max_backoff_ms=500
    )
    publish_to(settings, {0: range(5), 1: range(5)})
    with RunningConsumers([first]) as running_a:
        wait_for(lambda: first.paused, what="A retrying its batch")
        running_b = RunningConsumers([second])
        running_b.start()
        wait_for(lambda: len(first._owned) == len(second._owned) == 1, what="one partition each")
        x, y = only(first._owned), only(second._owned)
        wait_for(lambda: b.wrote(y, range(5)), what="B writing its partition")
        a.failing.clear()
        wait_for(lambda: a.wrote(x, range(5)) and not first.paused, what="A writing its own")
        assert [event for event in a.written if event[0] == y] == []
        running_b.stop()
        wait_for(lambda: len(first._owned) == 2, what="A owning both partitions again")
        publish_to(settings, {x: range(5, 10), y: range(5, 10)})
        running_a.wait_caught_up(timeout_s=60)
    assert a.wrote(y, range(5, 10)) and a.wrote(x, range(5, 10))


def test_partitions_assigned_during_retries_are_not_fetched_until_the_batch_is_done(
    make_settings: Callable[..., Settings],
) -> None:
    """A and B own a partition each; A's batch fails and waits 30 s to retry. B leaves, and
    A is assigned both partitions inside that wait. Messages then published to B's old
    partition must stay on the broker (not fetched and held in memory at full rate) while A
    is still retrying; once A recovers every message is written."""
    settings, a, _, first, second = members(
        make_settings, retry_backoff_ms=30_000, retry_max_backoff_ms=60_000
    )
    a.failing.clear()
    with RunningConsumers([first]) as running_a:
        running_b = RunningConsumers([second])
        running_b.start()
        wait_for(lambda: len(first._owned) == len(second._owned) == 1, what="one partition each")
        x, y = only(first._owned), only(second._owned)
        a.failing.set()
        publish_to(settings, {x: range(3)})
        wait_for(lambda: first.paused, what="A retrying its batch")
        running_b.stop()
        wait_for(lambda: len(first._owned) == 2, what="A owning both partitions")
        held = first.buffered
        publish_to(settings, {y: range(5)})
        # A polls every 0.2 s, and fetches a partition it may fetch within fetch.wait.max.ms
        # (50 ms) of a message's arrival: 3 s leaves it 15 polls to do so
        time.sleep(3)
        assert first.paused and first.buffered == held
        a.failing.clear()
        running_a.wait_caught_up(timeout_s=90)
    assert a.wrote(x, range(3)) and a.wrote(y, range(5))
