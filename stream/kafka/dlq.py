"""Dead letters: the original key and value, unchanged, with headers saying why and from where."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from schemas.errors import MAX_DETAIL_CHARS
from schemas.source import source_of

HEADER_ERROR = "recstream.error"
HEADER_DETAIL = "recstream.detail"
HEADER_SOURCE = "recstream.source"
OWN_HEADERS = frozenset({HEADER_ERROR, HEADER_DETAIL, HEADER_SOURCE})
"""recstream's headers on a dead letter: an original header of the same name is left out."""

HeaderList = list[tuple[str, str | bytes | None]]
MessageHeaders = dict[str, str | bytes | None] | HeaderList | None
"""Headers as confluent_kafka hands them over (a list when consumed)."""
T = TypeVar("T")


class Message(Protocol):
    """The part of confluent_kafka.Message recstream uses (so pure code needs no librdkafka)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> MessageHeaders: ...


class LocalMessage:
    """A message that did not come from a broker (benchmarks, tests), as processors see one."""

    def __init__(
        self,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        topic: str = "catalog.items",
        partition: int = 0,
        headers: HeaderList | None = None,
    ) -> None:
        self._offset, self._key, self._value = offset, key, value
        self._topic, self._partition, self._headers = topic, partition, headers

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

    def headers(self) -> HeaderList | None:
        return self._headers


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    reason: str
    detail: str
    source: str
    original_headers: tuple[tuple[str, str | bytes | None], ...] = ()
    """The failed message's own headers, kept beside recstream's (which win a name clash)."""

    def headers(self) -> list[tuple[str, str | bytes | None]]:
        kept = [(name, value) for name, value in self.original_headers if name not in OWN_HEADERS]
        return [
            *kept,
            (HEADER_ERROR, self.reason.encode()),
            (HEADER_DETAIL, self.detail[:MAX_DETAIL_CHARS].encode("utf-8", "replace")),
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


def message_headers(msg: Message) -> tuple[tuple[str, str | bytes | None], ...]:
    """The message's own headers, as pairs."""
    raw = msg.headers() or ()
    return tuple(raw.items() if isinstance(raw, dict) else raw)


def dead_letter(msg: Message, reason: str, detail: str) -> DeadLetter:
    source = source_of(msg.topic(), msg.partition(), msg.offset())
    return DeadLetter(msg.key(), msg.value(), reason, detail, source, message_headers(msg))
