"""Topics recstream creates, on the embedded broker: partitions and replicas as configured."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka.admin import AdminClient

from stream.kafka.config import client_config
from stream.kafka.topics import catalog_topics, ensure_topics
from stream.settings import Settings


def _replicas(settings: Settings, topic: str) -> set[int]:
    """How many replicas each partition of ``topic`` has, as the broker reports it."""
    meta = AdminClient(client_config(settings)).list_topics(topic, timeout=30).topics[topic]
    return {len(p.replicas) for p in meta.partitions.values()}


@pytest.mark.integration
def test_topics_get_the_configured_replication_factor(
    make_settings: Callable[..., Settings],
) -> None:
    """RECSTREAM_TOPIC_REPLICATION_FACTOR reaches every topic recstream creates (the embedded
    broker records what it is asked for)."""
    settings = make_settings(topic_replication_factor=3, topic_partitions=2)
    ensure_topics(settings, catalog_topics(settings))
    for topic in catalog_topics(settings):
        assert _replicas(settings, topic) == {3}, topic


@pytest.mark.integration
def test_by_default_the_broker_chooses_the_replication_factor(
    make_settings: Callable[..., Settings],
) -> None:
    """Unset (-1), the request leaves the replication factor to the broker's own default
    (one, on the single embedded broker)."""
    settings = make_settings()
    assert settings.topic_replication_factor == -1
    ensure_topics(settings, catalog_topics(settings))
    assert _replicas(settings, settings.topic_items) == {1}


def test_zero_replicas_is_an_invalid_setting() -> None:
    """0 (or below -1) is refused at start-up."""
    with pytest.raises(ValueError, match="topic_replication_factor"):
        Settings(topic_replication_factor=0)
