"""The monitoring half of docker-compose.yml: health checks on /readyz, Prometheus scraping every
recstream process, Grafana's provisioned data source and dashboard.

They run everywhere (no Docker): the files are read, the health check's one-liner is run against
a real API server, and the dashboard's queries are checked against the metric names a real
/metrics answer holds, so that neither can drift from the code. tests/integration/
test_compose_up.py starts the stack itself where Docker runs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from api import serving
from kit import behaviour_consumers
from scrape import sample_names

from encoders.hybrid import vector_dimension, vector_layout
from stream.collections import ensure_collections
from stream.settings import Settings
from stream.store.edge import EdgeStore

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "recstream.json"
RECSTREAM = {"catalog", "behaviour", "api"}
MONITORING = {"prometheus", "grafana"}
DEFAULT_HTTP_PORT = Settings.model_fields["http_port"].default

# PromQL words that are not metric names: functions, aggregations, keywords.
PROMQL_WORDS = {
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "by",
    "without",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "topk",
    "bottomk",
    "clamp_min",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "offset",
}
PROMETHEUS_OWN = {"up"}


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
    return compose


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _http_port(service: dict[str, Any]) -> int:
    env = service.get("environment") or {}
    return int(env.get("RECSTREAM_HTTP_PORT", DEFAULT_HTTP_PORT))


def _scrape_targets() -> dict[str, list[str]]:
    """Prometheus's static targets, by job."""
    config = yaml.safe_load(PROMETHEUS.read_text("utf-8"))
    return {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }


def _mounts(service: dict[str, Any]) -> dict[Path, str]:
    """A service's bind mounts: host path (resolved) -> path in the container."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith("."):
            out[(ROOT / source).resolve()] = target
    return out


def _queries() -> list[tuple[str, str]]:
    """(panel title, PromQL expression) of every query of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def _metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads (label matchers, grouping labels, ranges,
    strings and numbers left out)."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr))
    return words - PROMQL_WORDS


def test_compose_runs_the_consumers_the_api_prometheus_and_grafana_on_pinned_images() -> None:
    """Besides kafka and qdrant: the catalog and behaviour consumers and the API, built from the
    Dockerfile, running ``run catalog``, ``run behaviour`` and ``serve``; Prometheus and Grafana
    on images pinned to a version."""
    services = _services()
    assert set(services) >= RECSTREAM | MONITORING
    commands = {name: services[name]["command"] for name in RECSTREAM}
    assert commands == {
        "catalog": ["run", "catalog"],
        "behaviour": ["run", "behaviour"],
        "api": ["serve"],
    }
    for name in RECSTREAM:
        assert "build" in services[name], name
    for name, service in services.items():
        if "build" in service:
            continue
        image = service["image"]
        tag = image.rpartition(":")[2]
        assert ":" in image and tag != "latest" and re.search(r"\d", tag), f"{name}: {image}"


def test_every_recstream_service_is_healthy_only_when_ready() -> None:
    """Each recstream service's health check asks /readyz on the port it serves HTTP on."""
    for name in RECSTREAM:
        service = _services()[name]
        command = " ".join(service["healthcheck"]["test"])
        assert f"127.0.0.1:{_http_port(service)}/readyz" in command, name


def _health_check_exit(check: list[str], port: int) -> int:
    argv = [arg.replace(":8080/", f":{port}/") for arg in check[1:]]  # CMD form, no shell
    assert argv[0] == "python"
    return subprocess.run([sys.executable, *argv[1:]], capture_output=True, timeout=60).returncode


def test_the_health_check_one_liner_passes_when_ready_and_fails_when_not(tmp_path: Path) -> None:
    """The health check's python command, run against a real API server: exit 0 while /readyz
    is 200, non-zero once it is 503 (the process is stopping)."""
    check = _services()["api"]["healthcheck"]["test"]
    settings = Settings(qdrant_path=str(tmp_path / "q"))
    store = EdgeStore(settings.qdrant_path)
    ensure_collections(store, *vector_layout(settings))
    stopping = threading.Event()
    try:
        with serving(settings, store, stopping=stopping) as client:
            port = int(str(client.base_url).rsplit(":", 1)[1].strip("/"))
            assert _health_check_exit(check, port) == 0
            stopping.set()
            assert _health_check_exit(check, port) != 0
    finally:
        store.close()


def test_prometheus_scrapes_every_recstream_service_where_it_serves_http() -> None:
    """The recstream job's targets are exactly the recstream services, each at its HTTP port."""
    services = _services()
    targets = _scrape_targets()["recstream"]
    scraped = {}
    for target in targets:
        host, _, port = target.partition(":")
        assert host in services, f"{target}: no such compose service"
        scraped[host] = int(port)
    assert scraped == {name: _http_port(services[name]) for name in RECSTREAM}
    mounts = _mounts(services["prometheus"])
    assert mounts[PROMETHEUS] == "/etc/prometheus/prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    """Grafana's data source points at the prometheus service (uid used by every panel), and
    its dashboard provider reads the folder compose mounts the dashboard JSON into."""
    services = _services()
    grafana = services["grafana"]
    mounts = _mounts(grafana)
    provisioning = GRAFANA / "provisioning"
    assert mounts[provisioning.resolve()] == "/etc/grafana/provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text("utf-8"))
    (source,) = sources["datasources"]
    url = urlsplit(source["url"])
    assert url.hostname == "prometheus" and url.port == 9090
    assert any(p.endswith(":9090") for p in services["prometheus"]["ports"])
    providers = yaml.safe_load((provisioning / "dashboards" / "recstream.yml").read_text("utf-8"))
    (provider,) = providers["providers"]
    assert mounts[DASHBOARD.parent.resolve()] == provider["options"]["path"]
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]


@pytest.fixture
def exposed(tmp_path: Path) -> set[str]:
    """The series names a real /metrics answer of a process with consumers (built, not started:
    every family is served from the start) holds."""
    settings = Settings(qdrant_path=str(tmp_path / "q"))
    store = EdgeStore(settings.qdrant_path)
    try:
        consumers = behaviour_consumers(settings, store, vector_dimension(settings))
        with serving(settings, store, consumers) as client:
            client.get("/healthz")
            names: set[str] = sample_names(client.get("/metrics").text)
            return names
    finally:
        store.close()


def test_the_dashboard_queries_only_metrics_recstream_exposes(exposed: set[str]) -> None:
    """Every metric a dashboard query names is one /metrics serves (or Prometheus's own
    ``up``), and the dashboard shows lag, throughput, freshness, dead letters by reason, stage
    latency and HTTP latency."""
    queries = _queries()
    named: set[str] = set()
    for title, expr in queries:
        names = _metric_names(expr)
        assert names, f"{title}: {expr} names no metric"
        unknown = names - exposed - PROMETHEUS_OWN
        assert not unknown, f"{title}: {sorted(unknown)} are not served by /metrics"
        named |= names
    assert {
        "recstream_consumer_lag_messages",
        "recstream_consumer_events_total",
        "recstream_consumer_oldest_unpublished_seconds",
        "recstream_consumer_dead_letters_by_reason_total",
        "recstream_batch_stage_seconds_bucket",
        "recstream_http_request_seconds_bucket",
    } <= named


def test_metric_names_are_read_from_a_query_without_its_labels() -> None:
    """The dashboard check's reading of PromQL: grouping labels, matchers and ranges are no
    metric names."""
    expr = (
        "histogram_quantile(0.99, sum by (le, stage) (rate(recstream_batch_stage_seconds_bucket"
        '{consumer="catalog.items"}[5m]))) + up{job="recstream"}'
    )
    assert _metric_names(expr) == {"recstream_batch_stage_seconds_bucket", "up"}
