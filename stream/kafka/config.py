"""librdkafka configuration built from the settings. Secrets go to librdkafka, never to logs."""

from __future__ import annotations

from typing import Any

from stream.kafka.health import STATS_INTERVAL_MS, broker_watch
from stream.logs import librdkafka_logger
from stream.settings import Settings

_SECRET_KEYS = frozenset({"sasl.password", "ssl.key.password", "sasl.oauthbearer.client.secret"})


def client_config(settings: Settings) -> dict[str, Any]:
    """Connection and security settings shared by consumers, producers and the admin client;
    librdkafka's own log lines and errors go to the structured log, rate-limited."""
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.kafka_security_protocol,
        "logger": librdkafka_logger(),
        "error_cb": broker_watch(settings.kafka_bootstrap, marks=False).on_error,
    }
    if settings.kafka_sasl_mechanism:
        conf["sasl.mechanism"] = settings.kafka_sasl_mechanism
    if settings.kafka_sasl_username:
        conf["sasl.username"] = settings.kafka_sasl_username
    if settings.kafka_sasl_password:
        conf["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_ca_location:
        conf["ssl.ca.location"] = settings.kafka_ssl_ca_location
    return conf


def consumer_config(settings: Settings, group_id: str) -> dict[str, Any]:
    """At-least-once consumer: the consumer loop commits offsets after the work is durable.
    Its errors and connection statistics tell whether the broker can be reached (``/readyz``)."""
    watch = broker_watch(settings.kafka_bootstrap)
    return {
        **client_config(settings),
        "error_cb": watch.on_error,
        "stats_cb": watch.on_stats,
        "statistics.interval.ms": STATS_INTERVAL_MS,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "partition.assignment.strategy": settings.kafka_assignment_strategy,
        "session.timeout.ms": settings.kafka_session_timeout_ms,
        "max.poll.interval.ms": settings.kafka_max_poll_interval_ms,
        # fetch quickly, a micro-batch's deadline is counted in milliseconds
        "fetch.wait.max.ms": 50,
        "fetch.max.bytes": 16 * 1024 * 1024,
        "max.partition.fetch.bytes": max(1024 * 1024, settings.max_message_bytes * 4),
    }


def producer_config(settings: Settings) -> dict[str, Any]:
    """Idempotent, fully acknowledged producer with a short linger so outputs leave in batches."""
    return {
        **client_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.max.bytes": max(1024 * 1024, settings.max_message_bytes * 4),
    }


def redacted(conf: dict[str, Any]) -> dict[str, Any]:
    """The configuration with secrets masked, for logs and error messages."""
    return {k: ("***" if k in _SECRET_KEYS else v) for k, v in conf.items()}
