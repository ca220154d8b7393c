"""The catalog path on Apache Kafka and a Qdrant server, started by testcontainers.

Marked ``docker``: skipped (with the reason printed) where no Docker engine runs; with Docker,
``make test PYTEST_ARGS=--docker`` runs it.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from kit import (
    RunningConsumer,
    assert_lists_match_brute_force,
    event_bytes,
    final_lists,
    publish,
    upsert_event,
)

from encoders import Encoder
from recstream_tools.sample_catalog import sample_items
from stream.collections import ITEMS
from stream.settings import Settings
from stream.store.server import ServerStore

pytestmark = [pytest.mark.integration, pytest.mark.docker]


def test_catalog_on_apache_kafka_and_qdrant_server(encoder: Encoder, tmp_path: Path) -> None:
    """Against the real servers, every item's list equals the brute-force cosine top-k."""
    from testcontainers.kafka import KafkaContainer
    from testcontainers.qdrant import QdrantContainer

    with (
        KafkaContainer("apache/kafka:3.8.0").with_kraft() as kafka,
        QdrantContainer("qdrant/qdrant:v1.19.0") as qdrant,
    ):
        tag = uuid.uuid4().hex[:8]
        settings = Settings(
            kafka_bootstrap=kafka.get_bootstrap_server(),
            qdrant_url=f"http://{qdrant.rest_host_address}",
            group_id=f"docker-{tag}",
            topic_items=f"items-{tag}",
            topic_neighbours=f"neighbours-{tag}",
            kafka_session_timeout_ms=6_000,
            kafka_max_poll_interval_ms=60_000,
            batch_max_items=64,
        )
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
