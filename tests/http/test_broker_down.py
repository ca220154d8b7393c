"""A broker that goes away under running consumers: /readyz and the log say so, and
librdkafka's own lines reach the structured log, one per distinct message per 30 s, instead
of a stream of plain text on stderr."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from api import serving
from kit import RunningConsumers, wait_for
from structlog.testing import capture_logs

from encoders.hybrid import vector_dimension
from recstream_tools.broker import EmbeddedBroker
from stream.behaviour.item_stats import ItemStatsConsumer, ItemStatsProcessor
from stream.logs import message_shape
from stream.settings import Settings
from stream.store.edge import EdgeStore

DIM = vector_dimension(Settings())
RAW_LIBRDKAFKA_LINE = re.compile(r"^%\d\|\d+\.\d+\|", re.MULTILINE)


@pytest.mark.integration
def test_a_broker_that_goes_away_is_named_in_readyz_and_the_log(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A running consumer whose broker stops: /readyz turns 503 saying the broker is
    unreachable and which setting to check, the log says so once, librdkafka's lines come as
    ``kafka.client_log`` events with each distinct message at most once per 30 s,
    and nothing of librdkafka's reaches stderr as plain text."""
    started = time.monotonic()
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    settings = make_settings(kafka_bootstrap=broker.bootstrap)
    store = EdgeStore(settings.qdrant_path)
    consumer = ItemStatsConsumer(settings, ItemStatsProcessor(settings, store, DIM))
    try:
        with (
            capture_logs() as events,
            serving(settings, store, [consumer]) as client,
            RunningConsumers([consumer]),
        ):

            def ready() -> bool:
                return bool(client.get("/readyz").status_code == 200)

            wait_for(ready, 120, "the consumer to join")
            broker.stop()

            def says_unreachable() -> bool:
                return "Kafka broker is unreachable" in client.get("/readyz").text

            wait_for(says_unreachable, 60, "/readyz to name the unreachable broker")
            answer = client.get("/readyz")
            assert answer.status_code == 503
            assert broker.bootstrap in answer.json()["reason"]
            assert "RECSTREAM_KAFKA_BOOTSTRAP" in answer.json()["reason"]
            wait_for(
                lambda: any(e["event"] == "kafka.client_log" for e in events),
                60,
                "librdkafka's lines in the log",
            )
        unreachable = [e for e in events if e["event"] == "kafka.broker_unreachable"]
        assert len(unreachable) == 1
        assert unreachable[0]["bootstrap"] == broker.bootstrap
        shapes = Counter(
            message_shape(f"{e['facility']} {e['message']}")
            for e in events
            if e["event"] == "kafka.client_log"
        )
        windows = 1 + int((time.monotonic() - started) / 30)
        assert shapes and max(shapes.values()) <= windows, shapes.most_common(3)
        assert not RAW_LIBRDKAFKA_LINE.search(capfd.readouterr().err)
    finally:
        broker.stop()
        store.close()
