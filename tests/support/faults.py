"""Fault injection around real parts: a store and a producer that fail on command."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from confluent_kafka import Producer

from stream.store import SearchQuery, StoredPoint, StoreUnavailable, VectorStore, Where
from stream.store.base import FieldKind, Hit, Payload, Vector


class FlakyStore:
    """A real store that raises StoreUnavailable on every call while ``failing`` is set."""

    def __init__(self, inner: VectorStore) -> None:
        self.inner = inner
        self.failing = threading.Event()
        self.failures = 0
        self.exclusive = inner.exclusive

    def _check(self) -> None:
        if self.failing.is_set():
            self.failures += 1
            raise StoreUnavailable("injected: store down")

    def ensure_collection(
        self,
        name: str,
        dim: int,
        indexes: Mapping[str, FieldKind] | None = None,
        lexical: int = 0,
    ) -> None:
        self.inner.ensure_collection(name, dim, indexes, lexical)

    def sparse_width(self, collection: str) -> int:
        return self.inner.sparse_width(collection)

    def upsert(self, collection: str, points: Sequence[StoredPoint]) -> None:
        self._check()
        self.inner.upsert(collection, points)

    def set_payload(self, collection: str, payloads: Mapping[str, Payload]) -> None:
        self._check()
        self.inner.set_payload(collection, payloads)

    def update_vectors(self, collection: str, vectors: Mapping[str, Vector]) -> None:
        self._check()
        self.inner.update_vectors(collection, vectors)

    def delete(self, collection: str, keys: Sequence[str]) -> None:
        self._check()
        self.inner.delete(collection, keys)

    def retrieve(
        self,
        collection: str,
        keys: Sequence[str],
        with_vectors: bool = False,
        fields: Sequence[str] | None = None,
    ) -> dict[str, StoredPoint]:
        self._check()
        return self.inner.retrieve(collection, keys, with_vectors, fields)

    def search(self, collection: str, queries: Sequence[SearchQuery]) -> list[list[Hit]]:
        self._check()
        return self.inner.search(collection, queries)

    def keys_where(self, collection: str, where: Where, limit: int = 10_000) -> list[str]:
        self._check()
        return self.inner.keys_where(collection, where, limit)

    def top_by(self, collection: str, field: str, limit: int) -> list[StoredPoint]:
        self._check()
        return self.inner.top_by(collection, field, limit)

    def scroll(
        self,
        collection: str,
        with_vectors: bool = False,
        fields: Sequence[str] | None = None,
        where: Where | None = None,
    ) -> Iterator[StoredPoint]:
        return self.inner.scroll(collection, with_vectors, fields, where)

    def count(self, collection: str) -> int:
        self._check()
        return self.inner.count(collection)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()


class FlakyProducer:
    """A real producer to the real broker; while ``failing`` is set, records go to a real
    producer pointed at a closed port, whose deliveries fail after ``message.timeout.ms``."""

    failing = threading.Event()

    def __init__(self, config: dict[str, Any]) -> None:
        self.good = Producer(config)
        dead = {**config, "bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 500}
        self.bad = Producer(dead)

    def _current(self) -> Producer:
        return self.bad if self.failing.is_set() else self.good

    def produce(self, *args: Any, **kwargs: Any) -> None:
        self._current().produce(*args, **kwargs)

    def poll(self, timeout: float = 0) -> int:
        return self.good.poll(timeout) + self.bad.poll(0)

    def flush(self, timeout: float = -1) -> int:
        return self.bad.flush(min(timeout, 5) if timeout >= 0 else 5) + self.good.flush(timeout)
