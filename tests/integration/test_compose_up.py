"""The whole docker-compose.yml stack, started: every recstream service ready, Prometheus scraping
each of them, Grafana serving the provisioned dashboard.

Marked ``docker`` and ``slow``: skipped (with the reason printed) where no Docker engine runs;
with Docker, ``make test-full PYTEST_ARGS=--docker`` runs it (the first run builds the image:
minutes). It uses the
host ports the compose file publishes (8080-8082, 9090, 3000, 6333, 29092): they must be free.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kit import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
READY = {
    "catalog": "http://127.0.0.1:8081",
    "behaviour": "http://127.0.0.1:8082",
    "api": "http://127.0.0.1:8080",
}
PROMETHEUS = "http://127.0.0.1:9090"
GRAFANA = "http://127.0.0.1:3000"


@pytest.fixture(scope="module")
def stack() -> Iterator[str]:
    """``docker compose up --build --wait`` under a project name of its own; down (with its
    volumes) afterwards."""
    project = f"recstream-test-{uuid.uuid4().hex[:8]}"
    compose = ["docker", "compose", "-p", project, "-f", str(ROOT / "docker-compose.yml")]
    try:
        subprocess.run(
            [*compose, "up", "--build", "--detach", "--wait", "--wait-timeout", "600"],
            cwd=ROOT,
            check=True,
            timeout=3600,
        )
        yield project
    finally:
        subprocess.run([*compose, "logs", "--tail", "50"], cwd=ROOT, check=False, timeout=120)
        subprocess.run([*compose, "down", "--volumes"], cwd=ROOT, check=False, timeout=300)


def test_every_recstream_service_is_ready(stack: str) -> None:
    """/readyz of the catalog and behaviour consumers and of the API answer 200 from the host."""
    for name, base in READY.items():
        answer = httpx.get(f"{base}/readyz", timeout=10)
        assert answer.status_code == 200, f"{name}: {answer.text}"
        assert answer.json() == {"ready": True, "reason": None}


def test_prometheus_scrapes_every_recstream_service(stack: str) -> None:
    """Prometheus's targets of the recstream job are the three services, all up, and it holds
    their consumers' metrics."""

    def targets_up() -> bool:
        answer = httpx.get(f"{PROMETHEUS}/api/v1/targets", timeout=10).json()
        active = [t for t in answer["data"]["activeTargets"] if t["labels"]["job"] == "recstream"]
        instances = {t["labels"]["instance"] for t in active}
        return instances == set(READY) and all(t["health"] == "up" for t in active)

    wait_for(targets_up, 120, "Prometheus to scrape every recstream service")
    query = httpx.get(
        f"{PROMETHEUS}/api/v1/query",
        params={"query": "count by (instance) (recstream_consumer_joined)"},
        timeout=10,
    ).json()
    instances = {r["metric"]["instance"] for r in query["data"]["result"]}
    assert instances == {"catalog", "behaviour"}


def test_grafana_serves_the_provisioned_dashboard(stack: str) -> None:
    """Grafana is healthy and the recstream dashboard is there, with its panels (anonymous
    viewers may read it)."""
    assert httpx.get(f"{GRAFANA}/api/health", timeout=10).status_code == 200
    dashboard = httpx.get(f"{GRAFANA}/api/dashboards/uid/recstream", timeout=10)
    assert dashboard.status_code == 200
    titles = {p["title"] for p in dashboard.json()["dashboard"]["panels"]}
    assert "Consumer lag (messages)" in titles
