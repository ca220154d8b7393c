"""Records the producer refuses for good stop the consumer at once; dead letters are cut to fit.

A real librdkafka producer (its size check is local, no broker needed) under a scripted
consumer; the broker-level behaviour is in tests/loop/test_loop_oversized.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, Producer
from scripted import scripted_loop

from stream.kafka.dlq import HEADER_ERROR
from stream.kafka.fit import HEADER_KEY_BYTES, HEADER_TRUNCATED, fit_dead_letter
from stream.loop import BatchResult, Output
from stream.loop.publish import DeliveryFailed, OutputRejected, publish

MIB = 1024 * 1024


class Publishes:
    """Each batch publishes ``output``; counts the attempts."""

    def __init__(self, output: Output) -> None:
        self.output = output
        self.attempts = 0

    def receive(self, msg: Any) -> tuple[int, int]:
        return msg.offset(), 1

    def process(self, batch: list[int]) -> BatchResult[None]:
        self.attempts += 1
        return BatchResult(outputs=[self.output])

    def confirm(self, result: BatchResult[None]) -> None: ...

    def close(self) -> None: ...


def test_an_output_the_producer_refuses_for_its_size_stops_the_consumer_without_retries() -> None:
    """A record over message.max.bytes that is not a dead letter (a processor's output): every
    retry would meet the same refusal, so the loop stops at the first, with the size and the
    settings to look at, and commits nothing."""
    processor = Publishes(Output("items.neighbours", b"k", b"x" * (2 * MIB)))
    consumer, scripted = scripted_loop(processor, range(3))
    consumer.settings = consumer.settings.model_copy(update={"retry_budget_s": 30.0})
    consumer._producer = Producer({"bootstrap.servers": "127.0.0.1:1", "log_level": 0})
    consumer._poll_once()
    with pytest.raises(OutputRejected, match="RECSTREAM_MAX_MESSAGE_BYTES"):
        consumer._finish_pending()
    assert processor.attempts == 1
    assert scripted.commits == []


def test_a_dead_letter_over_the_limit_is_cut_with_headers_saying_so() -> None:
    """Key and value are cut so that the record fits; the reason headers stay, and new ones say
    what was cut and the original sizes. One that fits is left whole."""
    headers: list[tuple[str, str | bytes | None]] = [(HEADER_ERROR, b"too_large")]
    key, value = b"k" * MIB, b"v" * (2 * MIB)
    cut_key, cut_value, cut_headers = fit_dead_letter(key, value, headers, MIB)
    assert cut_key is not None and cut_value is not None
    assert len(cut_key) + len(cut_value) <= MIB - 1_024
    assert key.startswith(cut_key) and value.startswith(cut_value) and len(cut_value) > 0
    assert dict(cut_headers) == {
        HEADER_ERROR: b"too_large",
        HEADER_TRUNCATED: b"key,value",
        HEADER_KEY_BYTES: str(MIB).encode(),
        "recstream.value-bytes": str(2 * MIB).encode(),
    }
    assert fit_dead_letter(b"k", b"small", headers, MIB) == (b"k", b"small", headers)


def test_a_dead_letter_whose_own_headers_are_huge_keeps_only_recstreams() -> None:
    """The failed message's headers are left out when they take more than a quarter of the
    limit (they alone could make the record too large); the reason header stays."""
    headers: list[tuple[str, str | bytes | None]] = [
        ("trace", b"t" * MIB),
        (HEADER_ERROR, b"schema"),
    ]
    key, value, cut = fit_dead_letter(b"k", b"v" * 100, headers, MIB)
    assert (key, value) == (b"k", b"v" * 100)
    assert cut == [(HEADER_ERROR, b"schema"), (HEADER_TRUNCATED, b"headers")]


class Delivered:
    def __init__(self, topic: str) -> None:
        self._topic = topic

    def topic(self) -> str:
        return self._topic


class BrokerAnswers:
    """A producer whose broker answers every record with ``code`` (the embedded broker
    enforces no size limit, so a broker's refusal is played here)."""

    def __init__(self, code: int) -> None:
        self.code = code
        self.waiting: list[tuple[str, Any]] = []

    def produce(self, topic: str, on_delivery: Any, **record: Any) -> None:
        self.waiting.append((topic, on_delivery))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        for topic, on_delivery in self.waiting:
            on_delivery(KafkaError(self.code), Delivered(topic))
        self.waiting = []
        return 0


def test_a_record_the_broker_refuses_for_its_size_is_rejected_not_retried() -> None:
    """A delivery report of MSG_SIZE_TOO_LARGE (the topic's limit below the producer's) is
    OutputRejected, which stops the consumer; a timed-out delivery stays DeliveryFailed,
    which the loop retries."""
    out = [Output("items.neighbours", b"k", b"v")]
    with pytest.raises(OutputRejected, match=r"broker refused a record for items\.neighbours"):
        publish(BrokerAnswers(KafkaError.MSG_SIZE_TOO_LARGE), out, MIB)  # type: ignore[arg-type]
    with pytest.raises(DeliveryFailed):
        publish(BrokerAnswers(KafkaError._MSG_TIMED_OUT), out, MIB)  # type: ignore[arg-type]
