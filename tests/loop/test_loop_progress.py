"""What the loop records for the metrics endpoint: stage and batch durations per finished batch,
and whether the member has joined its group. A scripted consumer stands in for librdkafka."""

from __future__ import annotations

import time
from typing import Any

import pytest
from scripted import scripted_loop

from stream.loop import BatchConsumer, BatchResult
from stream.loop.consumer import STAGES
from stream.loop.durations import Durations
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
