"""Session-wide test options and fixtures shared by every test directory."""

from __future__ import annotations

import shutil

import pytest


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
