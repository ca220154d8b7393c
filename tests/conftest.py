"""Session-wide test options and fixtures shared by every test directory: a real broker for the
session (the embedded one unless RECSTREAM_TEST_BOOTSTRAP names another, started only when a test
asks for it), the real packaged model, unique topics per test."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from encoders import Encoder, load_encoder
from recstream_tools.broker import EmbeddedBroker
from stream.settings import Settings


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--docker",
        action="store_true",
        help="also run the tests marked docker (Apache Kafka, a Qdrant server; testcontainers)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--docker"):
        return
    reason = "needs a Docker engine: run `make test PYTEST_ARGS=--docker` where Docker runs"
    if shutil.which("docker") is None:
        reason = "no Docker engine here; where Docker runs: make test PYTEST_ARGS=--docker"
    for item in items:
        if "docker" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def bootstrap(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    external = os.environ.get("RECSTREAM_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as broker:
        yield broker.bootstrap


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    return load_encoder(Settings())


@pytest.fixture
def make_settings(bootstrap: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings with topics and group unique to the test (call again for a second, separate run)."""

    def make(**overrides: Any) -> Settings:
        tag = uuid.uuid4().hex[:10]
        base: dict[str, Any] = {
            "kafka_bootstrap": bootstrap,
            "group_id": f"test-{tag}",
            "topic_items": f"items-{tag}",
            "topic_neighbours": f"neighbours-{tag}",
            "topic_user_events": f"events-{tag}",
            "topic_recommendations": f"recs-{tag}",
            "qdrant_path": str(tmp_path / f"qdrant-{tag}"),
            "kafka_session_timeout_ms": 6_000,
            "kafka_max_poll_interval_ms": 60_000,
            "batch_max_items": 64,
            "batch_max_wait_ms": 100,
            "neighbours_k": 10,
            # tests date events on fixed days: none is a future_event whatever the clock says
            "history_max_future_s": 1e12,
            # no HTTP API unless a test asks for one (processes would share port 8080)
            "http_port": 0,
            # the repair sweep would set right lists these tests check the mechanisms get
            # right; tests/catalog/test_repair_sweep.py turns it on
            "repair_sweep_per_s": 0,
        }
        base.update(overrides)
        return Settings(**base)

    return make
