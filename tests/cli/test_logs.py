"""Secrets never reach logs: settings hold them as SecretStr, and the Kafka configuration is
logged only redacted. Also the two log formats of ``stream.logs``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from stream.kafka.config import client_config, consumer_config, producer_config, redacted
from stream.logs import configure_logging
from stream.settings import Settings

SASL_PASSWORD = "Zq7Xw4pT9mKd2R"
QDRANT_API_KEY = "Vb3Ny8cLh5sJ6W"
SECRETS = (SASL_PASSWORD, QDRANT_API_KEY)


@pytest.fixture(autouse=True)
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets come from the environment, as in production; nothing else RECSTREAM_ is set."""
    for name in list(os.environ):
        if name.startswith("RECSTREAM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RECSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("RECSTREAM_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("RECSTREAM_KAFKA_SASL_USERNAME", "recstream")
    monkeypatch.setenv("RECSTREAM_KAFKA_SASL_PASSWORD", SASL_PASSWORD)
    monkeypatch.setenv("RECSTREAM_QDRANT_URL", "https://qdrant.example:6333")
    monkeypatch.setenv("RECSTREAM_QDRANT_API_KEY", QDRANT_API_KEY)


@pytest.fixture
def configured() -> Iterator[None]:
    """Leave structlog as it was found after a test configures it."""
    yield
    structlog.reset_defaults()


def _no_secret_in(text: str) -> bool:
    return not any(secret in text for secret in SECRETS)


def test_settings_hold_the_secrets_as_secret_str() -> None:
    """The secrets are read from the environment and only their secret values are in clear."""
    s = Settings()
    assert s.kafka_sasl_password is not None
    assert s.qdrant_api_key is not None
    assert s.kafka_sasl_password.get_secret_value() == SASL_PASSWORD
    assert s.qdrant_api_key.get_secret_value() == QDRANT_API_KEY


def test_repr_and_str_of_settings_hide_the_secrets() -> None:
    """repr(), str() and format() of Settings show masks, not the secrets."""
    s = Settings()
    for text in (repr(s), str(s), f"{s}", f"{s!r}"):
        assert _no_secret_in(text)
    assert "**********" in repr(s)


def test_settings_dumped_as_json_hide_the_secrets() -> None:
    """The JSON dump of Settings (e.g. for a diagnostics line) masks the secrets."""
    assert _no_secret_in(Settings().model_dump_json())


def test_building_the_kafka_configuration_logs_no_secret() -> None:
    """Building settings and every librdkafka configuration logs nothing that holds a secret,
    and the redacted configuration (the one meant for logs) holds none either."""
    with capture_logs() as events:
        s = Settings()
        confs: list[dict[str, Any]] = [
            client_config(s),
            consumer_config(s, s.catalog_group()),
            producer_config(s),
        ]
        for conf in confs:
            assert _no_secret_in(repr(redacted(conf)))
    assert _no_secret_in(repr(events))


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_logged_settings_object_renders_without_secrets(
    fmt: str, configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Even a whole Settings object (or a SecretStr) bound to a log event renders masked."""
    configure_logging(fmt, "info")
    s = Settings()
    structlog.get_logger("test").info("settings", settings=s, password=s.kafka_sasl_password)
    err = capsys.readouterr().err
    assert "settings" in err
    assert _no_secret_in(err)


def test_captured_events_with_settings_hold_no_clear_secret() -> None:
    """capture_logs() sees the SecretStr objects, whose text is masked."""
    s = Settings()
    with capture_logs() as events:
        structlog.get_logger("test").info("start", settings=s, api_key=s.qdrant_api_key)
    assert len(events) == 1
    assert _no_secret_in(repr(events))
    assert _no_secret_in(str(events[0]["api_key"]))


def test_json_format_writes_one_json_object_per_event(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The json format writes each event as one JSON line with event, level and timestamp."""
    configure_logging("json", "info")
    structlog.get_logger("test").info("catalog.batch", events=3, topic="catalog.items")
    [line] = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert record["event"] == "catalog.batch"
    assert record["level"] == "info"
    assert record["events"] == 3
    assert record["timestamp"].endswith("Z")


def test_the_level_filters_lower_events(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Events below the configured level are dropped."""
    configure_logging("json", "warning")
    log = structlog.get_logger("test")
    log.info("quiet")
    log.warning("loud")
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["loud"]


def test_a_closed_stderr_never_breaks_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """Logging configured while one stderr was current keeps working after that stream is
    closed and replaced, and a closed stderr drops the line instead of raising."""
    import io

    import structlog

    from stream.logs import configure_logging

    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("json", "info")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    structlog.get_logger("t").info("after.close", n=1)
    assert '"after.close"' in second.getvalue()
    second.close()
    structlog.get_logger("t").info("into.closed.stream")  # must not raise
    structlog.reset_defaults()
