"""Reading a topic to its end and measuring a group's lag, without joining any group.

Used by the demo and by tests to see what a subscriber of the output topics would see.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from stream.kafka.config import client_config
from stream.settings import Settings


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


def _headers(msg: Message) -> dict[str, bytes]:
    """A message's headers as a dict; a header without a value reads as ``b""``."""
    raw = msg.headers() or []
    # librdkafka hands consumed headers over as a list of pairs; the dict form is the producer's.
    pairs: Iterable[tuple[str, str | bytes | None]] = raw.items() if isinstance(raw, dict) else raw
    return {k: v.encode() if isinstance(v, str) else (v or b"") for k, v in pairs}


def _partitions(consumer: Consumer, topic: str, timeout_s: float) -> list[int]:
    meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if meta is None or meta.error is not None:
        return []
    return sorted(meta.partitions)


def _reader(settings: Settings) -> Consumer:
    return Consumer(
        {
            **client_config(settings),
            "group.id": f"recstream-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 50,
        }
    )


def scan_topic(
    settings: Settings, topic: str, timeout_s: float = 30.0
) -> tuple[list[Record], dict[int, int]]:
    """Every record of ``topic`` up to its current end, and the end offset of each partition.

    The end is where the broker reports end-of-partition while fetching; ListOffsets ("high
    watermark") is not used because the embedded broker answers it wrongly.
    """
    consumer = _reader(settings)
    try:
        parts = _partitions(consumer, topic, timeout_s)
        if not parts:
            return [], {}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        ends: dict[int, int] = {}
        records: list[Record] = []
        deadline = time.monotonic() + timeout_s
        while len(ends) < len(parts):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s}s")
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                err = msg.error()
                p = msg.partition() or 0
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        ends[p] = msg.offset() or 0
                    continue
                ends.pop(p, None)
                records.append(
                    Record(
                        topic,
                        p,
                        msg.offset() or 0,
                        msg.key(),
                        msg.value(),
                        _headers(msg),
                    )
                )
        records.sort(key=lambda r: (r.partition, r.offset))
        return records, ends
    finally:
        consumer.close()


def iter_topic(settings: Settings, topic: str, idle_timeout_s: float = 30.0) -> Iterator[Record]:
    """The records of ``topic``, one at a time, each partition up to the end it had when this
    reading reached it (what is appended later is left for the next reading): memory stays
    bounded whatever the topic holds. Nothing for a topic that does not exist. Order: offset
    order within a partition. Raises TimeoutError when nothing arrives for ``idle_timeout_s``.
    """
    consumer = _reader(settings)
    try:
        parts = _partitions(consumer, topic, idle_timeout_s)
        if not parts:
            return
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        done: set[int] = set()
        quiet_since = time.monotonic()
        while len(done) < len(parts):
            if time.monotonic() - quiet_since > idle_timeout_s:
                raise TimeoutError(
                    f"could not read {topic} to its end: nothing arrived for {idle_timeout_s:g} s"
                )
            for msg in consumer.consume(num_messages=100, timeout=0.5):
                p = msg.partition() or 0
                err = msg.error()
                if p in done:
                    continue
                if err is not None:  # only the end counts as progress, not a broker error
                    if err.code() == KafkaError._PARTITION_EOF:
                        done.add(p)
                        consumer.pause([TopicPartition(topic, p)])
                        quiet_since = time.monotonic()
                    continue
                yield Record(topic, p, msg.offset() or 0, msg.key(), msg.value(), _headers(msg))
                quiet_since = time.monotonic()  # the caller's time with the record is not idle
    finally:
        consumer.close()


def read_topic(settings: Settings, topic: str, timeout_s: float = 30.0) -> list[Record]:
    """Every record of ``topic`` up to its current end, in partition and offset order."""
    return scan_topic(settings, topic, timeout_s)[0]


def latest_by_key(records: list[Record]) -> dict[bytes | None, bytes | None]:
    """What a compacted topic holds: the last value of each key (None for a tombstone)."""
    latest: dict[bytes | None, bytes | None] = {}
    for r in records:
        latest[r.key] = r.value
    return latest


def group_lag(settings: Settings, group_id: str, topic: str, timeout_s: float = 30.0) -> int:
    """Messages of ``topic`` not yet committed by ``group_id``."""
    _, ends = scan_topic(settings, topic, timeout_s)
    consumer = Consumer(
        {**client_config(settings), "group.id": group_id, "enable.auto.commit": False}
    )
    try:
        parts = [TopicPartition(topic, p) for p in ends]
        committed = {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=timeout_s)}
    finally:
        consumer.close()
    return sum(max(0, end - max(0, committed.get(p, 0))) for p, end in ends.items())
