"""Where a message came from, as recstream writes it into dead letters and item activities:
``topic/partition/offset``."""

from __future__ import annotations


def partition_of(topic: str | None, partition: int | None) -> str:
    """One input partition: ``topic/partition``."""
    return f"{topic}/{partition}"


def source_of(topic: str | None, partition: int | None, offset: int | None) -> str:
    """The position of one input message: ``topic/partition/offset``."""
    return f"{partition_of(topic, partition)}/{offset}"


def source_position(source: str) -> tuple[str, int]:
    """The input partition (``topic/partition``) and offset a source names; ValueError if none."""
    event, _, _ = source.partition("#")
    partition, _, offset = event.rpartition("/")
    if not partition or not offset.isascii() or not offset.isdigit() or len(offset) > 19:
        raise ValueError(f"source {source[:80]!r} is not topic/partition/offset#item")
    return partition, int(offset)
