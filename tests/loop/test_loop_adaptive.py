"""Batching that adapts to the load: without a batch wait, an idle consumer's first event is
processed at once, and a backlog still forms full batches; with any wait, an idle consumer wakes
at the first message. The loop's policy under a scripted
consumer, then a lone event through the real broker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kit import RunningConsumers, publish, wait_for
from scripted import TOPIC, Message, NullProducer, ScriptedConsumer

import stream.loop.consumer as loop_module
from stream.kafka.inspect import read_topic
from stream.loop import BatchConsumer, BatchResult, Output
from stream.settings import Settings


class Echo:
    """Publishes each event's value to ``out`` (when given); records the batches processed."""

    def __init__(self, out: str | None = None) -> None:
        self.out = out
        self.batches: list[list[bytes]] = []

    def receive(self, msg: Any) -> tuple[bytes, int]:
        return msg.value(), 1

    def process(self, batch: list[bytes]) -> BatchResult[None]:
        self.batches.append(list(batch))
        if self.out is None:
            return BatchResult()
        return BatchResult(outputs=[Output(self.out, value, value) for value in batch])

    def confirm(self, result: BatchResult[None]) -> None: ...

    def close(self) -> None: ...


def _scripted(processor: Echo) -> tuple[BatchConsumer[Any, Any], ScriptedConsumer]:
    """A loop over a scripted consumer with the default batch wait, batches of at most 3."""
    consumer: BatchConsumer[Any, Any] = BatchConsumer(
        Settings(batch_max_items=3, batch_max_wait_ms=0), processor, TOPIC, "g"
    )
    scripted = ScriptedConsumer([])
    consumer._consumer = scripted  # type: ignore[assignment]
    consumer._producer = NullProducer()  # type: ignore[assignment]
    consumer._owned = {(TOPIC, 0)}
    return consumer, scripted


def test_an_idle_consumers_lone_event_is_processed_in_the_poll_that_fetched_it() -> None:
    """No batch wait by default: the poll that fetches a lone event closes its batch and
    finishes it; nothing is left waiting for a deadline or for more events."""
    processor = Echo()
    consumer, scripted = _scripted(processor)
    consumer._poll_once()  # idle
    scripted.queue.append(Message(0, b"k", b"lone", TOPIC, 0))
    consumer._poll_once()
    assert processor.batches == [[b"lone"]]
    assert consumer.buffered == 0
    assert scripted.commits == [[(TOPIC, 0, 1)]]


def test_a_backlog_forms_full_batches_without_a_wait() -> None:
    """Events already queued when the loop polls are batched together, up to the batch size:
    seven waiting events make batches of 3, 3 and 1, in order."""
    processor = Echo()
    consumer, scripted = _scripted(processor)
    scripted.queue.extend(Message(o, b"k", b"%d" % o, TOPIC, 0) for o in range(7))
    for _ in range(4):
        consumer._poll_once()
    assert processor.batches == [[b"0", b"1", b"2"], [b"3", b"4", b"5"], [b"6"]]
    assert scripted.commits[-1] == [(TOPIC, 0, 7)]


@pytest.mark.integration
def test_a_lone_event_is_published_without_waiting_out_the_idle_poll(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the real broker, with the default batch wait: an idle consumer wakes at the first
    message, not at the end of its idle wait (made a minute long here), so a lone event's output
    is on the output topic long before that wait could have ended."""
    monkeypatch.setattr(loop_module, "_IDLE_POLL_S", 60.0)  # > the 30 s waited below
    settings = make_settings(batch_max_wait_ms=Settings().batch_max_wait_ms)
    source, out = settings.topic_user_events, settings.topic_recommendations
    processor = Echo(out)
    consumer: BatchConsumer[Any, Any] = BatchConsumer(
        settings, processor, source, settings.group_id, topics={source: {}, out: {}}
    )
    with RunningConsumers([consumer]) as running:
        wait_for(lambda: consumer.joined, timeout_s=60, what="the consumer to join")
        publish(settings, source, [(b"k", b"lone")])
        wait_for(lambda: bool(processor.batches), timeout_s=30, what="the lone event's batch")
        assert running.error is None
        listed = [(r.key, r.value) for r in read_topic(settings, out)]
        running.stop_event.set()
        publish(settings, source, [(b"k", b"wake")])  # ends the idle wait: the loop stops
    assert processor.batches[0] == [b"lone"]
    assert listed == [(b"lone", b"lone")]
