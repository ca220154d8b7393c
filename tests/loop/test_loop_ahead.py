"""The consumer loop with a batch closed ahead: order of work and of commits, revokes, retries.

A scripted consumer and producer stand in for librdkafka (this is the loop's own policy, not
Kafka's): the loop is driven poll by poll, as :meth:`BatchConsumer.run` drives it.
"""

from __future__ import annotations

from typing import Any

import pytest
from scripted import TOPIC, Message, ScriptedConsumer, scripted_loop

from stream.loop import BatchConsumer, BatchResult
from stream.store import StoreUnavailable


class Recorder:
    """A processor that records what it is asked to do; ``fail`` process() calls raise."""

    def __init__(self, fail: int = 0) -> None:
        self.log: list[tuple[str, list[int]]] = []
        self.fail = fail
        self.while_prepared: Any = None
        """None: prepare() starts nothing; else prepared work, run (and done) by
        wait_prepared()."""

    def receive(self, msg: Any) -> tuple[int, int]:
        return msg.offset(), 1

    def prepare(self, batch: list[int]) -> None:
        self.log.append(("prepare", list(batch)))

    def wait_prepared(self, batch: list[int], timeout_s: float) -> bool:
        if self.while_prepared is None:
            return False
        self.log.append(("waited", list(batch)))
        self.while_prepared()
        return True

    def process(self, batch: list[int]) -> BatchResult:
        if self.fail:
            self.fail -= 1
            raise StoreUnavailable("down")
        self.log.append(("process", list(batch)))
        return BatchResult()

    def confirm(self, result: BatchResult) -> None: ...

    def close(self) -> None: ...


def loop(processor: Recorder, offsets: range) -> tuple[BatchConsumer, ScriptedConsumer]:
    return scripted_loop(processor, offsets)


def arrive_during_the_wait(
    processor: Recorder, scripted: ScriptedConsumer, offsets: list[int]
) -> None:
    """These messages arrive while the first batch's prepared work runs (once)."""
    arriving = [Message(o, b"k", b"v", TOPIC, 0) for o in offsets]

    def arrive() -> None:
        scripted.queue.extend(arriving)
        arriving.clear()

    processor.while_prepared = arrive


def test_with_messages_waiting_the_next_batch_is_prepared_before_this_one_is_finished() -> None:
    """Batches are prepared one ahead, processed in order, and each batch's offsets are
    committed after its processing, never before an older batch's."""
    processor = Recorder()
    consumer, scripted = loop(processor, range(9))
    for _ in range(5):
        consumer._poll_once()
    assert processor.log == [
        ("prepare", [0, 1, 2]),
        ("prepare", [3, 4, 5]),
        ("process", [0, 1, 2]),
        ("prepare", [6, 7, 8]),
        ("process", [3, 4, 5]),
        ("process", [6, 7, 8]),  # nothing more waiting: finished without a next one
    ]
    assert scripted.commits == [[(TOPIC, 0, 3)], [(TOPIC, 0, 6)], [(TOPIC, 0, 9)]]
    assert scripted.waited == [False, False, False]  # in order, without waiting for answers


def test_events_that_arrive_while_a_batch_is_encoded_are_started_on_before_it_is_finished() -> None:
    """Batch 0-2 is closed and its model work started; 3-4 arrive while it runs. Once it is
    done, 3-4 are closed at once (long before their deadline) and prepared, and only then is
    0-2 finished: 3-4's model work runs while 0-2 is written and published."""
    processor = Recorder()
    consumer, scripted = loop(processor, range(3))
    arrive_during_the_wait(processor, scripted, [3, 4])
    consumer._poll_once()  # 0-2: a full batch, closed and prepared; nothing more yet
    consumer._poll_once()  # 3-4 arrive during the wait for 0-2's model work
    assert processor.log == [
        ("prepare", [0, 1, 2]),
        ("waited", [0, 1, 2]),
        ("prepare", [3, 4]),
        ("process", [0, 1, 2]),
    ]
    consumer._poll_once()  # nothing more: 3-4 finished once its model work is done
    assert processor.log[4:] == [("waited", [3, 4]), ("process", [3, 4])]
    assert scripted.commits == [[(TOPIC, 0, 3)], [(TOPIC, 0, 5)]]


def test_a_full_batch_arriving_during_the_wait_is_started_on_not_finished_at_once() -> None:
    """3-5 arrive while 0-2 is encoded and fill a batch: it is closed and prepared, 0-2 is
    finished, and 3-5 stays pending (its model work running) until the next poll."""
    processor = Recorder()
    consumer, scripted = loop(processor, range(3))
    arrive_during_the_wait(processor, scripted, [3, 4, 5])
    consumer._poll_once()
    consumer._poll_once()
    assert processor.log == [
        ("prepare", [0, 1, 2]),
        ("waited", [0, 1, 2]),
        ("prepare", [3, 4, 5]),
        ("process", [0, 1, 2]),
    ]
    consumer._poll_once()
    assert processor.log[4:] == [("waited", [3, 4, 5]), ("process", [3, 4, 5])]
    assert scripted.commits == [[(TOPIC, 0, 3)], [(TOPIC, 0, 6)]]


def test_closing_after_a_failure_commits_nothing_past_the_failed_batch() -> None:
    """The loop gave up on batch 0-2 (retry budget spent, or abandoned at shutdown) with 3-4
    in the open batch. Leaving the group fires the revoke callback: it must not process and
    commit 3-4, which would commit past 0-2."""
    processor = Recorder(fail=1)
    consumer, scripted = loop(processor, range(5))
    consumer._poll_once()  # 0-2 closed and prepared
    consumer.settings = consumer.settings.model_copy(update={"retry_budget_s": 0.0})
    with pytest.raises(StoreUnavailable):
        consumer._poll_once()  # 3-4 into the open batch; 0-2 fails, no budget left
    assert len(consumer._batcher) == 2
    scripted.on_close = lambda: consumer._on_revoke(None, [_Partition(TOPIC, 0)])  # type: ignore[arg-type]
    consumer._close_consumer()
    assert [batch for kind, batch in processor.log if kind == "process"] == []
    assert scripted.commits == []


def test_with_nothing_prepared_the_open_batch_stays_open() -> None:
    """A processor with no model work (behaviour consumers) keeps batching as before: the
    events behind a finished batch stay open (until they fill a batch or their deadline)."""
    processor = Recorder()
    consumer, _ = loop(processor, range(5))
    consumer._poll_once()  # 0-2 closed, prepared (nothing started)
    consumer._poll_once()  # 3-4 fetched, fewer than room: 0-2 finished
    assert processor.log == [("prepare", [0, 1, 2]), ("process", [0, 1, 2])]
    assert len(consumer._batcher) == 2


def test_commits_are_waited_for_only_while_partitions_are_revoked() -> None:
    processor = Recorder()
    consumer, scripted = loop(processor, range(5))
    consumer._poll_once()
    consumer._poll_once()  # 0-2 finished: committed without waiting
    consumer._on_revoke(None, [_Partition(TOPIC, 0)])  # type: ignore[arg-type]
    assert scripted.commits == [[(TOPIC, 0, 3)], [(TOPIC, 0, 5)]]
    assert scripted.waited == [False, True]  # 3-4 finished in the revoke: waited for
    consumer._owned = {(TOPIC, 0)}
    scripted.queue.extend(Message(o, b"k", b"v", TOPIC, 0) for o in range(5, 8))
    consumer._poll_once()
    consumer._poll_once()
    assert scripted.waited[-1] is False  # after the revoke: back to not waiting


def test_a_revoke_during_a_retry_commits_nothing_past_the_failing_batch() -> None:
    """Batch N (0-2) is finished with the next events (3-4) already in the open batch; N fails,
    and while it waits to retry its partition is revoked (the callback runs inside the retry's
    consume()). The open batch must not be processed and committed then: that would commit
    past N. N is not tried again (its partition is no longer ours: no write, no commit), and
    the open batch's events are dropped: the new owner redoes them all."""
    processor = Recorder(fail=2)
    consumer, scripted = loop(processor, range(5))
    revoked: list[bool] = []

    def revoke_inside_a_finish() -> None:
        if consumer._finishing and not revoked:
            revoked.append(True)
            consumer._on_revoke(None, [_Partition(TOPIC, 0)])  # type: ignore[arg-type]

    scripted.on_consume = revoke_inside_a_finish
    consumer._poll_once()  # 0-2 closed and prepared
    consumer._poll_once()  # 3-4 into the open batch, fewer than room: 0-2 finished (retried)
    assert revoked and processor.fail == 1  # no attempt after the revoke
    assert len(consumer._batcher) == 0
    consumer._finish(consumer._batcher.flush())
    assert [batch for kind, batch in processor.log if kind == "process"] == []
    assert scripted.commits == []


class _Partition:
    def __init__(self, topic: str, partition: int) -> None:
        self.topic, self.partition = topic, partition


@pytest.mark.parametrize("revoke_at", ["open", "pending"])
def test_an_ordinary_revoke_finishes_the_batch_ahead_then_the_open_one(revoke_at: str) -> None:
    """Outside a batch's finish, a revoke finishes what was read, older batch first, and
    commits it while the partition is still owned."""
    processor = Recorder()
    consumer, scripted = loop(processor, range(5 if revoke_at == "open" else 6))
    consumer._poll_once()  # 0-2 closed, pending
    if revoke_at == "open":
        consumer._poll_once()  # 3-4 open in the batcher; fewer than room: 0-2 finished
    consumer._on_revoke(None, [_Partition(TOPIC, 0)])  # type: ignore[arg-type]
    processed = [batch for kind, batch in processor.log if kind == "process"]
    assert processed == ([[0, 1, 2], [3, 4]] if revoke_at == "open" else [[0, 1, 2]])
    assert scripted.commits[-1] == [(TOPIC, 0, 5 if revoke_at == "open" else 3)]
