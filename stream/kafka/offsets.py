"""A consumer group's committed offsets: read from one group, committed for another."""

from __future__ import annotations

from confluent_kafka import Consumer, KafkaException, TopicPartition

from stream.kafka.config import client_config
from stream.settings import Settings

Offsets = dict[tuple[str, int], int]
"""The next offset to read, by (topic, partition); partitions with no commit are left out."""


def committed(settings: Settings, group: str, topic: str, timeout_s: float = 30.0) -> Offsets:
    """What ``group`` committed for each partition of ``topic`` (none for a new topic)."""
    consumer = _client(settings, group)
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or meta.error is not None:
            return {}
        parts = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        found = consumer.committed(parts, timeout=timeout_s)
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}


def commit(settings: Settings, group: str, offsets: Offsets) -> None:
    """Commit ``offsets`` for ``group`` (a group nobody consumes in yet); raises
    :class:`confluent_kafka.KafkaException` when the broker refuses a partition's."""
    if not offsets:
        return
    consumer = _client(settings, group)
    try:
        parts = [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
        done = consumer.commit(offsets=parts, asynchronous=False) or []
        failed = [tp for tp in done if tp.error is not None]
        if failed:
            raise KafkaException(failed[0].error)
    finally:
        consumer.close()


def unkept(settings: Settings, group: str, topic: str, timeout_s: float = 30.0) -> list[int]:
    """The partitions of ``topic`` from which ``group`` could no longer read everything since
    its commit: the broker deleted part of it (retention), or the commit itself expired."""
    consumer = _client(settings, group)
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or meta.error is not None:
            return []
        parts = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        found = {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=timeout_s)}
        low = {
            tp.partition: consumer.get_watermark_offsets(tp, timeout=timeout_s)[0] for tp in parts
        }
    finally:
        consumer.close()
    return lost_partitions(found, low)


def lost_partitions(committed: dict[int, int], low: dict[int, int]) -> list[int]:
    """Partitions whose committed offset (negative: none) is below the first offset the
    broker still holds (a partition never committed loses nothing only if it holds all)."""
    return sorted(p for p, first in low.items() if max(committed.get(p, -1), 0) < first)


def _client(settings: Settings, group: str) -> Consumer:
    return Consumer({**client_config(settings), "group.id": group, "enable.auto.commit": False})
