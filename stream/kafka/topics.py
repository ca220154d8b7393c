"""Creating the topics recstream writes (and, for demos, reads)."""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

# confluent_kafka.admin re-exports NewTopic without declaring it; import it where it is defined.
from confluent_kafka.cimpl import NewTopic

from stream.kafka.config import client_config
from stream.settings import Settings

log = structlog.get_logger(__name__)

COMPACT = {"cleanup.policy": "compact"}


def ensure_topics(
    settings: Settings, topics: Mapping[str, Mapping[str, str]], timeout_s: float = 30.0
) -> None:
    """Create each topic (with its config) unless it exists. Existing topics are left alone.
    Replicas: ``topic_replication_factor``, -1 leaving it to the broker's default."""
    admin = AdminClient(client_config(settings))
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [
        NewTopic(
            name,
            num_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
            config=dict(cfg),
        )
        for name, cfg in topics.items()
        if name not in existing
    ]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, request_timeout=timeout_s).items():
        try:
            future.result()
            log.info("topic.created", topic=name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


Topics = dict[str, Mapping[str, str]]
"""Topic names and the config each is created with."""


def catalog_topics(settings: Settings) -> Topics:
    """What the catalog consumer reads and writes: the neighbour lists are a compacted topic."""
    return {
        settings.topic_items: {},
        settings.dlq_topic(settings.topic_items): {},
        settings.topic_neighbours: COMPACT,
    }


def behaviour_topics(settings: Settings) -> Topics:
    """What the behaviour consumer reads and writes: the recommendations are compacted."""
    return {
        settings.topic_user_events: {},
        settings.dlq_topic(settings.topic_user_events): {},
        settings.topic_recommendations: COMPACT,
        settings.topic_item_activity(): {},
    }


def list_topics(settings: Settings) -> Topics:
    """What the lists consumer reads and writes (``RECSTREAM_LIST_STAGE=topic``)."""
    topic = settings.topic_list_work()
    return {topic: {}, settings.dlq_topic(topic): {}, settings.topic_neighbours: COMPACT}


def item_stats_topics(settings: Settings) -> Topics:
    """What the item-stats consumer reads and writes."""
    topic = settings.topic_item_activity()
    return {topic: {}, settings.dlq_topic(topic): {}}


def all_topics(settings: Settings) -> Topics:
    """Every topic the consumers of ``recstream run all`` read and write."""
    return {**catalog_topics(settings), **behaviour_topics(settings), **item_stats_topics(settings)}
