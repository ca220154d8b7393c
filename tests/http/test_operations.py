"""Health, readiness and metrics of a process, on a real uvicorn server with a real client,
real consumers on the real broker and a real embedded store."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from api import free_port, serving, taken_port
from faults import FlakyStore
from kit import RunningConsumers, behaviour_consumers, event_bytes, publish, wait_for
from scrape import samples

from encoders.hybrid import vector_dimension
from recstream_tools.sample_behaviour import sample_behaviour
from recstream_tools.sample_catalog import sample_items
from stream.collections import ensure_collections
from stream.http.queries import Queries
from stream.http.server import HttpUnavailable
from stream.runner import run_consumers
from stream.settings import Settings
from stream.store.edge import EdgeStore

DIM = vector_dimension(Settings())


def test_health_docs_and_openapi_are_served(tmp_path: Path) -> None:
    """/healthz is 200; /readyz is 200 for a process without consumers whose store answers, and
    503 once it is stopping; /openapi.json describes every endpoint and /docs is a page; an
    unknown path is a JSON 404."""
    settings = Settings(qdrant_path=str(tmp_path / "q"))
    store = EdgeStore(settings.qdrant_path)
    ensure_collections(store, DIM)
    stopping = threading.Event()
    try:
        with serving(settings, store, stopping=stopping) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            assert client.get("/readyz").json() == {"ready": True, "reason": None}
            stopping.set()
            stopped = client.get("/readyz")
            assert stopped.status_code == 503
            assert stopped.json() == {"ready": False, "reason": "the process is stopping"}
            assert client.get("/healthz").status_code == 200
            paths = client.get("/openapi.json").json()["paths"]
            assert {
                "/healthz",
                "/readyz",
                "/metrics",
                "/v1/items/{item_id}/similar",
                "/v1/users/{user_id}/recommendations",
                "/v1/search",
            } <= set(paths)
            docs = client.get("/docs")
            assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
            missing = client.get("/v2/nothing")
            assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    finally:
        store.close()


def test_a_failing_store_is_a_json_503_and_an_unexpected_error_a_json_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the store fails, a query is 503 ``store_unavailable`` and /readyz 503 (/healthz
    stays 200); an unexpected failure in a query is a JSON 500 whose message points to the log
    and shows nothing of the failure."""
    settings = Settings(qdrant_path=str(tmp_path / "q"))
    inner = EdgeStore(settings.qdrant_path)
    ensure_collections(inner, DIM)
    store = FlakyStore(inner)
    try:
        with serving(settings, store) as client:
            store.failing.set()
            down = client.get("/v1/items/sku-1/similar")
            assert down.status_code == 503 and down.json()["error"] == "store_unavailable"
            assert client.get("/readyz").status_code == 503
            assert client.get("/healthz").status_code == 200
            store.failing.clear()

            def broken(*args: object) -> None:
                raise RuntimeError("secret internals")

            monkeypatch.setattr(Queries, "recommendations", broken)
            failed = client.get("/v1/users/u-1/recommendations")
            assert failed.status_code == 500
            assert failed.json()["error"] == "internal" and "log" in failed.json()["message"]
            assert "secret internals" not in failed.text
    finally:
        inner.close()


@pytest.mark.integration
def test_readiness_follows_the_consumers_and_the_store(
    make_settings: Callable[..., Settings],
) -> None:
    """/readyz is 503 with a JSON reason before the consumers joined their groups, 200 once they
    did, 503 while the store fails (and, once a batch fails, while the consumer retries it),
    and 200 again when the store is back and the batch went through."""
    settings = make_settings(retry_backoff_ms=50, retry_max_backoff_ms=300)
    store = FlakyStore(EdgeStore(settings.qdrant_path))
    consumers = behaviour_consumers(settings, store, DIM)
    try:
        with serving(settings, store, consumers) as client:
            before = client.get("/readyz")
            assert before.status_code == 503
            assert before.json()["ready"] is False
            assert "has not joined its group" in before.json()["reason"]
            with RunningConsumers(consumers) as running:

                def ready() -> bool:
                    return client.get("/readyz").status_code == 200

                wait_for(ready, 120, "the consumers to join")
                assert client.get("/readyz").json() == {"ready": True, "reason": None}

                store.failing.set()
                down = client.get("/readyz")
                assert down.status_code == 503
                assert "vector store does not answer" in down.json()["reason"]
                events = sample_behaviour(sample_items(10), users=3, seed=3)
                publish(settings, settings.topic_user_events, map(event_bytes, events))

                def retrying() -> bool:
                    return "retrying a failing batch" in client.get("/readyz").text

                wait_for(retrying, 120, "the consumer to retry its batch")
                store.failing.clear()
                running.wait_caught_up()
                wait_for(ready, 60, "readiness after the store came back")
                assert not any(c.paused for c in consumers)
    finally:
        store.inner.close()


@pytest.mark.integration
def test_metrics_parse_and_count_the_events_that_flowed(
    make_settings: Callable[..., Settings],
) -> None:
    """/metrics parses as Prometheus text; each consumer's event, batch and output counters
    start at 0 and, after events flowed through the running consumers, count them; the
    batch and stage histograms count every batch; the requests are timed too."""
    settings = make_settings()
    store = EdgeStore(settings.qdrant_path)
    consumers = behaviour_consumers(settings, store, DIM)
    label = (("consumer", settings.topic_user_events),)
    try:
        with serving(settings, store, consumers) as client:
            first = client.get("/metrics")
            assert first.headers["content-type"].startswith("text/plain")
            assert samples(first.text, "recstream_consumer_events_total")[label] == 0
            events = sample_behaviour(sample_items(20), users=8, seed=9)
            publish(settings, settings.topic_user_events, map(event_bytes, events))
            with RunningConsumers(consumers) as running:
                running.wait_caught_up()
                text = client.get("/metrics").text
            assert samples(text, "recstream_consumer_events_total")[label] == len(events)
            batches = samples(text, "recstream_consumer_batches_total")[label]
            assert batches >= 1
            assert samples(text, "recstream_consumer_outputs_total")[label] > 0
            assert samples(text, "recstream_consumer_joined")[label] == 1
            assert samples(text, "recstream_consumer_paused")[label] == 0
            assert samples(text, "recstream_consumer_buffered_messages")[label] == 0
            recs = (*label, ("kind", "recommendations"))
            assert samples(text, "recstream_consumer_processed_total")[recs] > 0
            assert samples(text, "recstream_batch_seconds_count")[label] == batches
            stages = samples(text, "recstream_batch_stage_seconds_count")
            for stage in ("process", "publish", "confirm", "commit"):
                assert stages[tuple(sorted([*label, ("stage", stage)]))] == batches
            infinite = (*label, ("le", "+Inf"))
            assert samples(text, "recstream_batch_seconds_bucket")[infinite] == batches
            timed = samples(text, "recstream_http_request_seconds_count")
            assert timed[(("method", "GET"), ("route", "/metrics"), ("status", "200"))] >= 1
    finally:
        store.close()


@pytest.mark.integration
def test_run_serves_http_beside_its_consumers_and_stops_with_them(
    make_settings: Callable[..., Settings],
) -> None:
    """``run_consumers`` (what ``recstream run`` runs) serves the API on the settings' port:
    ready once its consumers joined, with their metrics; when stopped, it exits 0 and the port
    is released."""
    port = free_port()
    settings = make_settings(http_host="127.0.0.1", http_port=port)
    stop = threading.Event()
    codes: list[int] = []
    thread = threading.Thread(
        target=lambda: codes.append(run_consumers(settings, "behaviour", stop)), daemon=True
    )
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            def ready() -> bool:
                try:
                    return client.get("/readyz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(ready, 120, "the process to be ready")
            consumers = {
                dict(labels)["consumer"]
                for labels in samples(client.get("/metrics").text, "recstream_consumer_joined")
            }
            assert consumers == {settings.topic_user_events, settings.topic_item_activity()}
    finally:
        stop.set()
        thread.join(120)
    assert codes == [0]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)


def test_a_taken_port_stops_run_before_anything_is_opened(tmp_path: Path) -> None:
    """With the HTTP port taken, ``run_consumers`` raises an error that names the setting to
    change, before it opens the store."""
    path = tmp_path / "never"
    with taken_port() as port:
        settings = Settings(qdrant_path=str(path), http_host="127.0.0.1", http_port=port)
        with pytest.raises(HttpUnavailable, match="RECSTREAM_HTTP_PORT"):
            run_consumers(settings, "behaviour", threading.Event())
    assert not path.exists()
