"""What the loop writes and fetches around rebalances that happen while a batch is retried.

A scripted consumer stands in for librdkafka (the loop's own policy; tests/loop/test_loop_
rebalance.py runs the same situations with real consumers on the embedded broker). Rebalance
callbacks fire inside the retry's consume(), as librdkafka serves them.
"""

from __future__ import annotations

from typing import Any, cast

from confluent_kafka import Consumer, TopicPartition
from scripted import TOPIC, Message, ScriptedConsumer, scripted_loop

from stream.loop import BatchConsumer, BatchResult
from stream.store import StoreUnavailable


class Writes:
    """A processor whose entries are (partition, offset); the first ``fail`` attempts fail,
    ``written`` holds the batches that went through."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.attempts: list[list[tuple[int, int]]] = []
        self.written: list[list[tuple[int, int]]] = []

    def receive(self, msg: Any) -> tuple[tuple[int, int], int]:
        return (msg.partition(), msg.offset()), 1

    def process(self, batch: list[tuple[int, int]]) -> BatchResult[None]:
        self.attempts.append(list(batch))
        if self.fail:
            self.fail -= 1
            raise StoreUnavailable("down")
        self.written.append(list(batch))
        return BatchResult()

    def confirm(self, result: BatchResult[None]) -> None: ...

    def close(self) -> None: ...


def two_partitions(
    processor: Writes, offsets: range
) -> tuple[BatchConsumer[Any, Any], ScriptedConsumer]:
    """A loop owning partitions 0 and 1 of ``TOPIC``, messages at ``offsets`` on each, in
    turns (0, 1, 0, 1, ...); batches of 3."""
    consumer, scripted = scripted_loop(processor, range(0))
    scripted.queue = [Message(o, b"k", b"v", TOPIC, p) for o in offsets for p in (0, 1)]
    consumer._owned = {(TOPIC, 0), (TOPIC, 1)}
    return consumer, scripted


def revoke(consumer: BatchConsumer[Any, Any], scripted: ScriptedConsumer, partition: int) -> None:
    """The revoke callback, as librdkafka calls it."""
    consumer._on_revoke(cast(Consumer, scripted), [TopicPartition(TOPIC, partition)])


def assign(consumer: BatchConsumer[Any, Any], scripted: ScriptedConsumer, partition: int) -> None:
    """The assign callback, as librdkafka calls it."""
    consumer._on_assign(cast(Consumer, scripted), [TopicPartition(TOPIC, partition)])


def once_retrying(consumer: BatchConsumer[Any, Any], scripted: ScriptedConsumer, act: Any) -> None:
    """Run ``act`` inside the first consume() of a failing batch's retry wait."""
    done: list[bool] = []

    def during_retry() -> None:
        if consumer.paused and not done:
            done.append(True)
            act()

    scripted.on_consume = during_retry


def test_a_retry_writes_only_the_events_of_partitions_still_owned() -> None:
    """Batch (0,0) (1,0) (0,1) fails; while it waits to retry, partition 1 moves to another
    member. The next attempt writes only partition 0's events and commits only partition 0:
    partition 1's events belong to its new owner, which redoes them from the last commit (a
    write from here could land after the new owner's newer ones)."""
    processor = Writes(fail=1)
    consumer, scripted = two_partitions(processor, range(2))
    once_retrying(consumer, scripted, lambda: revoke(consumer, scripted, 1))
    consumer._poll_once()  # (0,0) (1,0) (0,1) closed
    consumer._poll_once()  # (1,1) open; the closed batch fails once, partition 1 revoked
    assert processor.attempts[0] == [(0, 0), (1, 0), (0, 1)]
    assert processor.written == [[(0, 0), (0, 1)]]
    assert scripted.commits == [[(TOPIC, 0, 2)]]
    assert len(consumer._batcher) == 0  # (1,1) was read before the revoke: dropped too


def test_a_partition_revoked_and_given_back_during_retries_is_redone_from_its_commit() -> None:
    """Partition 0 is revoked and given back while its batch waits to retry (another member
    may have owned it in between). What was read of it before the revoke is not written, even
    though it is ours again; it is fetched again from the last commit and written then."""
    processor = Writes(fail=1)
    consumer, scripted = scripted_loop(processor, range(5))

    def away_and_back() -> None:
        revoke(consumer, scripted, 0)
        assign(consumer, scripted, 0)

    once_retrying(consumer, scripted, away_and_back)
    consumer._poll_once()  # 0-2 closed
    consumer._poll_once()  # 3-4 open; 0-2 fails, the partition goes away and comes back
    assert processor.written == []
    assert consumer.buffered == 0  # 3-4 dropped as well
    # fetched again from the last commit (none yet), once the partition is resumed
    scripted.queue = [Message(o, b"k", b"v", TOPIC, 0) for o in range(5)]
    for _ in range(3):
        consumer._poll_once()
    consumer._finish(consumer._batcher.flush())
    assert processor.written == [[(0, 0), (0, 1), (0, 2)], [(0, 3), (0, 4)]]
    assert scripted.commits == [[(TOPIC, 0, 3)], [(TOPIC, 0, 5)]]


def test_partitions_assigned_while_a_batch_is_retried_are_paused_then_resumed() -> None:
    """A partition assigned while the loop retries a failing batch is taken and paused at
    once (otherwise it is fetched at full rate while nothing is processed); one assigned
    while nothing fails is resumed (librdkafka keeps a pause through a revoke and a new
    assignment, so a partition paused, revoked and given back would never be fetched)."""
    processor = Writes(fail=1)
    consumer, scripted = scripted_loop(processor, range(3))
    once_retrying(consumer, scripted, lambda: assign(consumer, scripted, 1))
    consumer._poll_once()
    consumer._finish_pending()
    assert ("assign", [(TOPIC, 1)]) in scripted.calls
    assigned = scripted.calls.index(("assign", [(TOPIC, 1)]))
    assert scripted.calls[assigned + 1] == ("pause", [(TOPIC, 1)])
    assert processor.written == [[(0, 0), (0, 1), (0, 2)]]
    assign(consumer, scripted, 2)
    assert scripted.calls[-2:] == [("assign", [(TOPIC, 2)]), ("resume", [(TOPIC, 2)])]
