"""The catalog path on Apache Kafka and a Qdrant server, started by testcontainers.

Marked ``docker``: skipped (with the reason printed) where no Docker engine runs; with Docker,
``make test PYTEST_ARGS=--docker`` runs it.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kit import (
    RunningConsumer,
    assert_lists_match_brute_force,
    catalogue_churn,
    event_bytes,
    final_lists,
    publish,
    settings_env,
    upsert_event,
    wait_for,
)

from encoders import Encoder
from recstream_tools.sample_catalog import sample_items
from stream.collections import ITEMS
from stream.kafka.inspect import group_lag
from stream.settings import Settings
from stream.store.server import ServerStore

pytestmark = [pytest.mark.integration, pytest.mark.docker]


@contextmanager
def servers() -> Iterator[tuple[str, str]]:
    """Apache Kafka and a Qdrant server: (bootstrap servers, Qdrant URL)."""
    from testcontainers.kafka import KafkaContainer
    from testcontainers.qdrant import QdrantContainer

    with (
        KafkaContainer("apache/kafka:3.8.0").with_kraft() as kafka,
        QdrantContainer("qdrant/qdrant:v1.19.0") as qdrant,
    ):
        yield kafka.get_bootstrap_server(), f"http://{qdrant.rest_host_address}"


def server_settings(bootstrap: str, qdrant_url: str, **overrides: object) -> Settings:
    tag = uuid.uuid4().hex[:8]
    base: dict[str, object] = {
        "kafka_bootstrap": bootstrap,
        "qdrant_url": qdrant_url,
        "group_id": f"docker-{tag}",
        "topic_items": f"items-{tag}",
        "topic_neighbours": f"neighbours-{tag}",
        "kafka_session_timeout_ms": 6_000,
        "kafka_max_poll_interval_ms": 60_000,
        "batch_max_items": 64,
        "http_port": 0,
        "repair_sweep_per_s": 0,  # the lists must be right without it
    }
    return Settings(**{**base, **overrides})  # type: ignore[arg-type]


def test_catalog_on_apache_kafka_and_qdrant_server(encoder: Encoder, tmp_path: Path) -> None:
    """Against the real servers, every item's list equals the brute-force cosine top-k."""
    with servers() as (bootstrap, qdrant_url):
        settings = server_settings(bootstrap, qdrant_url)
        items = sample_items(200, seed=5)
        publish(
            settings,
            settings.topic_items,
            (event_bytes(upsert_event(i, 1, "item.created")) for i in items),
        )
        store = ServerStore(url=settings.qdrant_url)
        try:
            with RunningConsumer(settings, encoder, store) as running:
                running.wait_caught_up()
            assert store.count(ITEMS) == len(items)
            assert_lists_match_brute_force(final_lists(settings), store, settings.neighbours_k)
        finally:
            store.close()


def test_three_catalog_processes_on_one_qdrant_server_end_with_exact_lists(
    tmp_path: Path,
) -> None:
    """Three real ``recstream run catalog`` processes in one group (each with its lists
    consumer, ``RECSTREAM_LIST_STAGE=topic``, the default with a server) over one Qdrant server:
    a listed catalogue, then a burst of creates, price-only updates, new texts and deletions,
    during which one process is SIGKILLed and replaced. Every live item's last list is the
    brute-force top k of the stored vectors, and every deleted item's last record a tombstone."""
    with servers() as (bootstrap, qdrant_url):
        settings = server_settings(
            bootstrap, qdrant_url, neighbours_k=5, topic_partitions=4, batch_max_items=4
        )
        listed, burst = catalogue_churn(random.Random(2026))
        env = settings_env(settings)
        command = [sys.executable, "-m", "stream.cli", "run", "catalog"]
        logs = [open(tmp_path / f"run-{n}.log", "wb") for n in range(4)]  # noqa: SIM115
        procs = [subprocess.Popen(command, env=env, stderr=logs[n]) for n in range(3)]

        def caught_up() -> bool:
            assert all(p.poll() is None for p in procs), "a catalog process exited"
            return all(
                group_lag(settings, group, topic) == 0
                for group, topic in (
                    (settings.catalog_group(), settings.topic_items),
                    (settings.lists_group(), settings.topic_list_work()),
                )
            )

        try:
            publish(settings, settings.topic_items, listed)
            wait_for(caught_up, 300, "the listed catalogue")
            publish(settings, settings.topic_items, burst[: len(burst) // 2])
            time.sleep(1.0)
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait()
            procs[0] = subprocess.Popen(command, env=env, stderr=logs[3])
            publish(settings, settings.topic_items, burst[len(burst) // 2 :])
            wait_for(caught_up, 300, "the burst")
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=60)
            for log in logs:
                log.close()
        store = ServerStore(url=settings.qdrant_url)
        try:
            lists = final_lists(settings)
            live = {p.key for p in store.scroll(ITEMS)}
            assert_lists_match_brute_force({k: v for k, v in lists.items() if k in live}, store, 5)
            for key, value in lists.items():
                assert key in live or value is None, f"{key} is deleted, its last record is a list"
        finally:
            store.close()
