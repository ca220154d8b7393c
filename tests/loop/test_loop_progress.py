"""What the loop records for the metrics endpoint: stage and batch durations per finished batch,
dead letters by reason, retries, lag from librdkafka's statistics, and whether the member has
joined its group. A scripted consumer stands in for librdkafka."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from scripted import scripted_loop

from stream.loop import BatchConsumer, BatchResult, DeliveryFailed, Output, Progress
from stream.loop.durations import Durations
from stream.loop.progress import STAGES, lag_from_statistics
from stream.store import StoreUnavailable


class SlowProcessor:
    """Takes ``process_s`` to process a batch; the first ``fail`` attempts fail."""

    def __init__(self, process_s: float, fail: int = 0) -> None:
        self.process_s = process_s
        self.fail = fail

    def receive(self, msg: Any) -> tuple[int, int]:
        return msg.offset(), 1

    def process(self, batch: list[int]) -> BatchResult[None]:
        if self.fail:
            self.fail -= 1
            raise StoreUnavailable("down")
        time.sleep(self.process_s)
        return BatchResult()

    def confirm(self, result: BatchResult[None]) -> None: ...

    def close(self) -> None: ...


def _loop(processor: SlowProcessor, n: int) -> BatchConsumer[int, None]:
    return scripted_loop(processor, range(n))[0]


def test_every_finished_batch_records_its_stage_and_batch_durations() -> None:
    """Two batches: each stage's histogram and the batch histogram count two durations; the
    process stage took at least the processor's own time, and a batch at least its stages."""
    consumer = _loop(SlowProcessor(process_s=0.02), 6)
    for _ in range(4):
        consumer._poll_once()
    consumer._finish_pending()
    p = consumer.progress
    assert p.batches == 2 and p.events == 6
    assert {stage: p.stage_seconds[stage].count for stage in STAGES} == dict.fromkeys(STAGES, 2)
    assert p.stage_seconds["process"].total_s >= 0.04
    assert p.batch_seconds.count == 2
    assert p.batch_seconds.total_s >= sum(p.stage_seconds[s].total_s for s in STAGES) - 1e-6


def test_a_retried_batch_counts_once_and_its_batch_duration_includes_the_retries() -> None:
    """A batch that failed twice before going through is one observation per stage (the
    attempt that went through), and one batch duration that spans the failed attempts."""
    consumer = _loop(SlowProcessor(process_s=0.0, fail=2), 3)
    consumer._poll_once()
    consumer._finish_pending()
    p = consumer.progress
    assert p.batches == 1
    assert all(p.stage_seconds[stage].count == 1 for stage in STAGES)
    assert p.batch_seconds.count == 1
    # two backoffs of at least 1 ms and 2 ms passed inside the batch's finish
    assert p.batch_seconds.total_s >= 0.003


def test_joined_turns_true_at_the_first_assignment_even_of_no_partitions() -> None:
    """A member that has not been assigned partitions yet has not joined; an assignment, even
    an empty one (more members than partitions), means it has."""
    consumer = _loop(SlowProcessor(process_s=0.0), 0)
    assert not consumer.joined
    consumer._on_assign(consumer._consumer, [])  # type: ignore[arg-type]
    assert consumer.joined


@pytest.mark.parametrize(
    ("seconds", "bucket"), [(0.0, 0), (0.005, 0), (0.0051, 1), (1.0, 7), (121.0, 14)]
)
def test_durations_fall_in_the_bucket_of_the_first_bound_at_or_above_them(
    seconds: float, bucket: int
) -> None:
    """A duration equal to a bound counts under that bound (Prometheus's ``le``); one over
    every bound counts only in the infinite bucket; cumulative counts end at the total."""
    d = Durations()
    d.observe(seconds)
    assert d.counts[bucket] == 1 and d.count == 1 and d.total_s == seconds
    cumulative = d.cumulative()
    assert cumulative[-1] == (float("inf"), 1)
    assert [n for _, n in cumulative] == [0] * bucket + [1] * (len(cumulative) - bucket)


class DeadLettering:
    """Each batch: one list (no headers) and a dead letter per entry, reason by offset parity;
    the first ``fail`` attempts fail, the store's or the broker's."""

    def __init__(self, fail: int = 0, broker: bool = False) -> None:
        self.fail = fail
        self.broker = broker

    def receive(self, msg: Any) -> tuple[int, int]:
        return msg.offset(), 1

    def process(self, batch: list[int]) -> BatchResult[None]:
        if self.fail:
            self.fail -= 1
            raise DeliveryFailed("broker") if self.broker else StoreUnavailable("down")
        outputs = [Output("items.neighbours", b"k", b"{}")]
        for offset in batch:
            reason = "invalid_json" if offset % 2 else "schema_violation"
            headers: list[tuple[str, str | bytes | None]] = [
                ("origin", b"shop"),
                ("recstream.error", reason.encode()),
            ]
            outputs.append(Output("catalog.items.dlq", b"k", b"v", headers))
        counts = {"dead_letters": len(batch), "encoder_tokens": 10 * len(batch)}
        return BatchResult(outputs, counts, seconds={"encode": 0.01})

    def confirm(self, result: BatchResult[None]) -> None: ...

    def close(self) -> None: ...


def test_dead_letters_are_counted_by_reason_and_processor_stages_recorded() -> None:
    """Six dead letters over two batches count by their ``recstream.error`` header (other
    headers beside it), the processor's counts add up in totals, and a stage the processor
    reported (``encode``) has a histogram beside the loop's stages."""
    consumer = _loop(DeadLettering(), 6)  # type: ignore[arg-type]
    for _ in range(4):
        consumer._poll_once()
    consumer._finish_pending()
    p = consumer.progress
    assert p.dead_letters == 6
    assert p.dead_letter_reasons == {"schema_violation": 3, "invalid_json": 3}
    assert p.totals["encoder_tokens"] == 60
    assert p.stage_seconds["encode"].count == 2
    assert p.stage_seconds["commit"].count == 2


@pytest.mark.parametrize(("broker", "store_errors"), [(False, 2), (True, 0)])
def test_retried_attempts_are_counted_and_the_stores_apart(broker: bool, store_errors: int) -> None:
    """Two failed attempts are two retries; they are store errors when the store failed them,
    not when the broker did."""
    consumer = _loop(DeadLettering(fail=2, broker=broker), 3)  # type: ignore[arg-type]
    consumer._poll_once()
    consumer._finish_pending()
    p = consumer.progress
    assert (p.batches, p.retries, p.store_errors) == (1, 2, store_errors)


def _partition(partition: int, **offsets: int | bool) -> dict[str, Any]:
    base: dict[str, Any] = {
        "partition": partition,
        "desired": True,
        "hi_offset": -1001,
        "ls_offset": -1001,
        "lo_offset": -1001,
        "committed_offset": -1001,
    }
    return {**base, **offsets}


def test_lag_is_the_end_of_each_assigned_partition_less_its_commit() -> None:
    """From a librdkafka statistics report: committed partitions lag by end - commit; one
    without a commit by end - its first offset; partitions not assigned, librdkafka's -1 entry
    and ones with no fetch answered yet are left out; a report replaces the lag whole."""
    report = {
        "topics": {
            "catalog.items": {
                "partitions": {
                    "0": _partition(0, hi_offset=10, ls_offset=10, lo_offset=0, committed_offset=4),
                    "1": _partition(1, hi_offset=7, ls_offset=7, lo_offset=2),
                    "2": _partition(2, hi_offset=7, ls_offset=7, desired=False),
                    "3": _partition(3),
                    "-1": _partition(-1, hi_offset=5),
                }
            }
        }
    }
    p = Progress()
    p.lag = {("old", 0): 3}
    p.statistics(json.dumps(report))
    assert p.lag == {("catalog.items", 0): 6, ("catalog.items", 1): 5}
    assert lag_from_statistics({}) == {}


def test_an_unreadable_statistics_report_keeps_the_last_lag() -> None:
    """A report that is not the JSON expected is logged, not raised (it runs inside poll)."""
    p = Progress()
    p.lag = {("catalog.items", 0): 3}
    p.statistics("{not json")
    assert p.lag == {("catalog.items", 0): 3}
