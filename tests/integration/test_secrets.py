"""Secrets (the SASL password, the Qdrant API key) never appear in logs, error messages or
tracebacks, even when the connections they are for fail."""

from __future__ import annotations

import functools
import signal
import socket
import threading
import traceback
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

import stream.loop.consumer
from stream.cli import main
from stream.kafka.topics import ensure_topics
from stream.loop import BatchConsumer
from stream.runner import run_consumers
from stream.settings import Settings
from stream.store import StoreUnavailable

pytestmark = pytest.mark.integration


def _secrets() -> tuple[str, str]:
    tag = uuid.uuid4().hex
    return f"kafka-pw-{tag}", f"qdrant-key-{tag[::-1]}"


def _closed_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _exception_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def _assert_absent(secrets: Iterable[str], texts: Iterable[str]) -> None:
    for text in texts:
        for secret in secrets:
            # the distinctive half is enough: a cut or re-quoted secret still leaks
            assert secret[-16:] not in text, f"secret found in: {text[:300]}"


def _sasl_settings(make_settings: Callable[..., Settings], **overrides: Any) -> Settings:
    kafka_secret, qdrant_secret = _secrets()
    return make_settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="recstream",
        kafka_sasl_password=kafka_secret,
        qdrant_api_key=qdrant_secret,
        **overrides,
    )


def _secret_values(settings: Settings) -> list[str]:
    assert settings.kafka_sasl_password is not None and settings.qdrant_api_key is not None
    return [
        settings.kafka_sasl_password.get_secret_value(),
        settings.qdrant_api_key.get_secret_value(),
    ]


def test_no_secret_when_the_qdrant_server_is_unreachable(
    make_settings: Callable[..., Settings],
    capfd: pytest.CaptureFixture[str],
    recwarn: pytest.WarningsRecorder,
) -> None:
    """recstream's consumers (run_consumers, as ``recstream run behaviour`` does) with a SASL
    password and a Qdrant API key, the Qdrant server refusing connections: the StoreUnavailable
    raised, its traceback, every captured log event, every warning and everything written to
    stdout/stderr are free of both secrets."""
    settings = _sasl_settings(make_settings, qdrant_url=f"http://127.0.0.1:{_closed_port()}")
    with capture_logs() as logs, pytest.raises(StoreUnavailable) as failure:
        run_consumers(settings, "behaviour", threading.Event())
    out, err = capfd.readouterr()
    texts = [repr(event) for event in logs]
    texts += [_exception_text(failure.value), out, err, repr(settings), str(settings)]
    texts += [str(w.message) for w in recwarn]
    _assert_absent(_secret_values(settings), texts)


def test_no_secret_when_kafka_authentication_fails(
    make_settings: Callable[..., Settings],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The behaviour and item-stats consumers (run_consumers, as ``recstream run behaviour``
    does) configured for SASL_PLAINTEXT against a broker that does not accept it (the embedded
    one): every consumer fails to reach the cluster and the run exits 1; the exceptions and
    their tracebacks, every captured log event (``consumer.failed`` included) and librdkafka's
    own log lines on stderr are free of the password and of the Qdrant API key."""
    # librdkafka waits out the whole metadata timeout whatever the failure: shorten it
    quick = functools.partial(ensure_topics, timeout_s=2.0)
    monkeypatch.setattr(stream.loop.consumer, "ensure_topics", quick)
    raised: list[BaseException] = []
    original_run = BatchConsumer.run

    def recording_run(self: BatchConsumer, stop: threading.Event) -> None:
        try:
            original_run(self, stop)
        except BaseException as exc:
            raised.append(exc)
            raise

    monkeypatch.setattr(BatchConsumer, "run", recording_run)
    settings = _sasl_settings(make_settings)
    with capture_logs() as logs:
        assert run_consumers(settings, "behaviour", threading.Event()) == 1
    assert len(raised) == 2, "expected both consumers to fail to connect"
    assert sum(1 for e in logs if e["event"] == "consumer.failed") == 2
    out, err = capfd.readouterr()
    texts = [repr(event) for event in logs]
    texts += [_exception_text(e) for e in raised] + [out, err]
    _assert_absent(_secret_values(settings), texts)


def test_no_secret_in_the_output_of_the_command(
    make_settings: Callable[..., Settings],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """``recstream run behaviour`` given the SASL password in the environment and the Qdrant
    API key in a file (secrets are no command-line options), a server not answering: what the
    command writes (JSON logs and its one-line error on stderr) is free of both secrets."""
    kafka_secret, qdrant_secret = _secrets()
    settings = make_settings()
    key_file = tmp_path / "qdrant-api-key"
    key_file.write_text(qdrant_secret + "\n")
    monkeypatch.setenv("RECSTREAM_KAFKA_SASL_PASSWORD", kafka_secret)
    monkeypatch.setenv("RECSTREAM_QDRANT_API_KEY_FILE", str(key_file))
    argv = [
        "run",
        "behaviour",
        f"--kafka-bootstrap={settings.kafka_bootstrap}",
        "--kafka-security-protocol=SASL_PLAINTEXT",
        "--kafka-sasl-mechanism=PLAIN",
        "--kafka-sasl-username=recstream",
        f"--qdrant-url=http://127.0.0.1:{_closed_port()}",
        "--log-level=debug",
        "--http-port=0",
    ]
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = main(argv)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        structlog.reset_defaults()  # main() configured JSON logging for the process
    out, err = capfd.readouterr()
    assert code != 0
    # the failure the secrets came close to: a server that does not answer, named by setting
    assert "did not answer" in err and "check RECSTREAM_" in err
    _assert_absent([kafka_secret, qdrant_secret], [out, err])
