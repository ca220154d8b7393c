"""librdkafka configuration from the settings, and the dead-letter headers."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from stream.kafka.config import client_config, consumer_config, producer_config, redacted
from stream.kafka.dlq import (
    HEADER_DETAIL,
    HEADER_ERROR,
    HEADER_SOURCE,
    DeadLetter,
    dead_letter,
)
from stream.settings import Settings

PASSWORD = "Zq7Xw4pT9mKd2R"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings here come from the test alone, not from RECSTREAM_ variables around it."""
    for name in list(os.environ):
        if name.startswith("RECSTREAM_"):
            monkeypatch.delenv(name)


def sasl_settings() -> Settings:
    return Settings(
        kafka_bootstrap="broker-1:9093,broker-2:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="recstream",
        kafka_sasl_password=SecretStr(PASSWORD),
        kafka_ssl_ca_location="/etc/ssl/kafka-ca.pem",
    )


# --- consumer and producer ----------------------------------------------------------------


def test_consumer_commits_only_what_the_loop_stores() -> None:
    """At-least-once: no auto commit and no automatic offset store; the loop commits."""
    conf = consumer_config(Settings(), "recstream.catalog")
    assert conf["enable.auto.commit"] is False
    assert conf["enable.auto.offset.store"] is False
    assert conf["group.id"] == "recstream.catalog"


def test_assignment_strategy_is_eager_range_by_default_and_configurable() -> None:
    """The default is the eager range protocol (the embedded broker does not complete
    cooperative rebalances); cooperative-sticky can be chosen for real Kafka."""
    assert consumer_config(Settings(), "g")["partition.assignment.strategy"] == "range"
    chosen = Settings(kafka_assignment_strategy="cooperative-sticky")
    assert consumer_config(chosen, "g")["partition.assignment.strategy"] == "cooperative-sticky"


def test_consumer_timeouts_come_from_the_settings() -> None:
    """Session timeout and max poll interval are the settings' values."""
    s = Settings(kafka_session_timeout_ms=6_000, kafka_max_poll_interval_ms=7_000)
    conf = consumer_config(s, "g")
    assert conf["session.timeout.ms"] == 6_000
    assert conf["max.poll.interval.ms"] == 7_000


def test_consumer_fetches_messages_up_to_the_dead_letter_limit() -> None:
    """A message just over max_message_bytes can still be fetched (to be dead-lettered)."""
    s = Settings(max_message_bytes=4 * 1024 * 1024)
    assert consumer_config(s, "g")["max.partition.fetch.bytes"] > s.max_message_bytes


def test_producer_is_idempotent_and_fully_acknowledged() -> None:
    """Outputs are produced with idempotence and acks=all, so a retry does not duplicate."""
    conf = producer_config(Settings())
    assert conf["enable.idempotence"] is True
    assert conf["acks"] == "all"


def test_plaintext_by_default_without_sasl_keys() -> None:
    """The default configuration is PLAINTEXT to the default bootstrap, with no SASL keys."""
    conf = _connection(client_config(Settings()))
    assert conf == {"bootstrap.servers": "localhost:9092", "security.protocol": "PLAINTEXT"}


def _connection(conf: dict[str, Any]) -> dict[str, Any]:
    """The configuration less the callbacks and the logger (objects, not settings)."""
    return {k: v for k, v in conf.items() if k not in _HOOKS}


_HOOKS = frozenset({"logger", "error_cb", "stats_cb", "statistics.interval.ms"})


def test_librdkafka_logs_and_errors_go_to_the_structured_log() -> None:
    """Every client hands librdkafka the rate-limited logger and an error callback; consumers
    also report their connections, which tell /readyz whether the broker is reachable."""
    for conf in (client_config(Settings()), producer_config(Settings()), _consumer(Settings())):
        assert isinstance(conf["logger"], logging.Logger)
        assert callable(conf["error_cb"])
    consumer = _consumer(Settings())
    assert callable(consumer["stats_cb"])
    assert consumer["statistics.interval.ms"] > 0


# --- SASL / SSL ------------------------------------------------------------------------------


def test_sasl_settings_map_to_librdkafka_keys() -> None:
    """Security settings become librdkafka's keys; the password is handed over in clear."""
    conf = _connection(client_config(sasl_settings()))
    assert conf == {
        "bootstrap.servers": "broker-1:9093,broker-2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "recstream",
        "sasl.password": PASSWORD,
        "ssl.ca.location": "/etc/ssl/kafka-ca.pem",
    }


def _consumer(settings: Settings) -> dict[str, Any]:
    return consumer_config(settings, "g")


@pytest.mark.parametrize("build", [_consumer, producer_config], ids=["consumer", "producer"])
def test_consumers_and_producers_share_the_security_settings(
    build: Callable[[Settings], dict[str, Any]],
) -> None:
    """Consumer and producer configurations carry the same connection and SASL keys."""
    conf = build(sasl_settings())
    assert conf.items() >= _connection(client_config(sasl_settings())).items()


def test_redacted_masks_the_password() -> None:
    """redacted() hides the SASL password and keeps every other key as it is."""
    conf = consumer_config(sasl_settings(), "g")
    shown = redacted(conf)
    assert shown["sasl.password"] == "***"
    assert PASSWORD not in repr(shown)
    assert {k: v for k, v in shown.items() if k != "sasl.password"} == {
        k: v for k, v in conf.items() if k != "sasl.password"
    }


def test_redacted_leaves_the_original_alone() -> None:
    """redacted() returns a copy: the configuration handed to librdkafka keeps the password."""
    conf = client_config(sasl_settings())
    redacted(conf)
    assert conf["sasl.password"] == PASSWORD


def test_redacted_masks_other_librdkafka_secrets() -> None:
    """Key passwords and OAuth client secrets are masked too."""
    shown = redacted({"ssl.key.password": "a", "sasl.oauthbearer.client.secret": "b", "x": "c"})
    assert shown == {"ssl.key.password": "***", "sasl.oauthbearer.client.secret": "***", "x": "c"}


# --- dead letters ----------------------------------------------------------------------------


@dataclass
class FakeMessage:
    """Just the part of confluent_kafka.Message the dead-letter code reads."""

    _topic: str = "catalog.items"
    _partition: int = 3
    _offset: int = 42
    _key: bytes | None = b"sku-1"
    _value: bytes | None = b"{not json"

    def topic(self) -> str | None:
        return self._topic

    def partition(self) -> int | None:
        return self._partition

    def offset(self) -> int | None:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> None:
        return None


def test_dead_letter_keeps_key_and_value_and_names_the_source() -> None:
    """A dead letter carries the original bytes unchanged and ``topic/partition/offset``."""
    d = dead_letter(FakeMessage(), "invalid_json", "Expecting property name")
    assert (d.key, d.value) == (b"sku-1", b"{not json")
    assert d.source == "catalog.items/3/42"


def test_dead_letter_headers_carry_reason_detail_and_source() -> None:
    """The three recstream.* headers hold the reason code, the detail and the source."""
    headers = dead_letter(FakeMessage(), "schema", "item.title: field required").headers()
    assert headers == [
        (HEADER_ERROR, b"schema"),
        (HEADER_DETAIL, b"item.title: field required"),
        (HEADER_SOURCE, b"catalog.items/3/42"),
    ]
    assert [name for name, _ in headers] == [
        "recstream.error",
        "recstream.detail",
        "recstream.source",
    ]


def test_a_long_detail_is_cut() -> None:
    """A detail longer than 1,000 characters is cut to its first 1,000."""
    detail = "x" * 999 + "é" + "y" * 5_000
    headers = dict(DeadLetter(None, None, "schema", detail, "t/0/0").headers())
    assert headers[HEADER_DETAIL].decode("utf-8") == detail[:1_000]


def test_a_detail_that_is_not_valid_unicode_still_encodes() -> None:
    """A detail holding a lone surrogate (from a broken input) is encoded with a replacement."""
    headers = dict(DeadLetter(None, None, "schema", "bad \udc80 text", "t/0/0").headers())
    assert headers[HEADER_DETAIL] == b"bad ? text"
