"""Dead letters: the original key and value, unchanged, with headers saying why and from where."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from schemas.source import source_of

HEADER_ERROR = "recstream.error"
HEADER_DETAIL = "recstream.detail"
HEADER_SOURCE = "recstream.source"

_MAX_DETAIL = 1_000
T = TypeVar("T")


class Message(Protocol):
    """The part of confluent_kafka.Message recstream uses (so pure code needs no librdkafka)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...


class LocalMessage:
    """A message that did not come from a broker (benchmarks, tests), as processors see one."""

    def __init__(
        self,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        topic: str = "catalog.items",
        partition: int = 0,
    ) -> None:
        self._offset, self._key, self._value = offset, key, value
        self._topic, self._partition = topic, partition

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    reason: str
    detail: str
    source: str

    def headers(self) -> list[tuple[str, str | bytes | None]]:
        return [
            (HEADER_ERROR, self.reason.encode()),
            (HEADER_DETAIL, self.detail[:_MAX_DETAIL].encode("utf-8", "replace")),
            (HEADER_SOURCE, self.source.encode()),
        ]


def split_batch(
    batch: Sequence[DeadLetter | T], key: Callable[[T], str]
) -> tuple[list[DeadLetter], dict[str, list[T]]]:
    """A batch's dead letters, and its other entries grouped by ``key`` (keys in sorted order,
    each group in batch order)."""
    dead: list[DeadLetter] = []
    groups: dict[str, list[T]] = defaultdict(list)
    for entry in batch:
        if isinstance(entry, DeadLetter):
            dead.append(entry)
        else:
            groups[key(entry)].append(entry)
    return dead, {k: groups[k] for k in sorted(groups)}


def dead_letter(msg: Message, reason: str, detail: str) -> DeadLetter:
    source = source_of(msg.topic(), msg.partition(), msg.offset())
    return DeadLetter(msg.key(), msg.value(), reason, detail, source)
