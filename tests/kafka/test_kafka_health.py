"""Pure parts of the broker watch and of librdkafka's log: the rate limit, the unreachable
mark set by librdkafka's errors and cleared by its statistics."""

from __future__ import annotations

import json
import logging

from confluent_kafka import KafkaError
from structlog.testing import capture_logs

from stream.kafka.health import BrokerWatch
from stream.logs import RateLimit, librdkafka_logger, message_shape


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_one_occurrence_per_distinct_message_per_window() -> None:
    """The first occurrence passes, repeats within the window are held back and counted, and
    the next one after the window passes with that count."""
    clock = Clock()
    limit = RateLimit(30.0, clock)
    assert limit.admit("a") == 0
    assert limit.admit("b") == 0, "another message has its own window"
    for _ in range(5):
        clock.now += 1
        assert limit.admit("a") is None
    clock.now = 30.0
    assert limit.admit("a") == 5
    assert limit.admit("a") is None


def test_message_shape_ignores_numbers() -> None:
    """Lines that differ only in counts and durations are one message."""
    a = "Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after 0ms in state CONNECT)"
    b = "Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after 12ms in state CONNECT)"
    assert message_shape(a) == message_shape(b)


def test_librdkafka_lines_become_rate_limited_log_events() -> None:
    """A line librdkafka logs (facility, client, text) is one ``kafka.client_log`` event at its
    level; the same line again at once is held back."""
    logger = librdkafka_logger()
    text = "unit-test-host:1/bootstrap: Connect failed (after 3ms in state CONNECT)"
    with capture_logs() as events:
        for _ in range(50):
            logger.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", text)
    [event] = events
    assert event["event"] == "kafka.client_log"
    assert event["log_level"] == "error"
    assert event["facility"] == "FAIL"
    assert event["client"] == "rdkafka#consumer-1"
    assert event["message"] == text


def _stats(*states: str) -> str:
    brokers = {f"b{i}:9092/{i}": {"state": s} for i, s in enumerate(states)}
    return json.dumps({"name": "rdkafka#consumer-1", "brokers": brokers})


def test_every_broker_down_marks_unreachable_until_a_connection_is_up() -> None:
    """_ALL_BROKERS_DOWN marks the broker unreachable (logged once, naming the setting);
    statistics without a connection up leave the mark; one up clears it (logged)."""
    watch = BrokerWatch("kafka:9092")
    assert watch.unreachable() is None
    with capture_logs() as events:
        for _ in range(3):
            watch.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
        assert watch.unreachable() == "1/1 brokers are down"
        watch.on_stats(_stats("DOWN", "CONNECT"))
        assert watch.unreachable() is not None
        watch.on_stats(_stats("DOWN", "UP"))
        assert watch.unreachable() is None
    names = [e["event"] for e in events]
    assert names == ["kafka.broker_unreachable", "kafka.broker_reachable"]
    assert "RECSTREAM_KAFKA_BOOTSTRAP" in events[0]["hint"]


def test_a_producer_watch_only_logs() -> None:
    """A watch that does not mark (producers, admin clients: the broker closes their idle
    connections) logs every broker down as a warning and never marks the broker unreachable;
    other errors are logged once per window."""
    watch = BrokerWatch("kafka:9092", marks=False)
    with capture_logs() as events:
        watch.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
        for _ in range(3):
            watch.on_error(KafkaError(KafkaError._TRANSPORT, "unit-test-host:9092/1: Disconnected"))
    assert watch.unreachable() is None
    assert [(e["event"], e["code"]) for e in events] == [
        ("kafka.client_error", "_ALL_BROKERS_DOWN"),
        ("kafka.client_error", "_TRANSPORT"),
    ]
