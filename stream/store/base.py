"""The vector store interface recstream's consumers use, and the values it speaks in.

Points are addressed by their entity id (``key``: an item id or a user id); adapters derive the
engine's point id from it with :func:`point_id`, deterministically, so a replayed upsert lands
on the same point. The key is also kept in the payload under ``"key"`` so search hits can name it.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from stream.errors import Refused, Transient

Vector = npt.NDArray[np.float32]
Payload = dict[str, Any]
Id = TypeVar("Id")

_NAMESPACE = uuid.UUID("6f1c1d2e-7a51-4d0e-9a55-3c1e0b7d9a10")


@functools.lru_cache(maxsize=1 << 18)
def point_id(key: str) -> str:
    """The engine's point id for an entity id: a UUIDv5, stable across processes and versions.
    (Cached: a busy catalogue asks for the same ids over and over, and each costs a SHA-1.)"""
    return str(uuid.uuid5(_NAMESPACE, key))


class FieldKind(Enum):
    """Payload index kinds the consumers ask for."""

    KEYWORD = "keyword"
    FLOAT = "float"
    INTEGER = "integer"
    BOOL = "bool"


@dataclass(frozen=True)
class Where:
    """A filter: every condition given must hold.

    - ``exclude_keys``: the point's key is not one of these.
    - ``below``: ``payload[field] < value`` (points without the field do not match).
    - ``contains``: ``payload[field]`` equals ``value`` or, for a list, holds it.
    - ``within``: ``low <= payload[field] <= high``, either bound None for none (points without
      the field do not match).
    - ``flag``: ``payload[field]`` is this boolean.
    """

    exclude_keys: frozenset[str] = frozenset()
    below: tuple[str, float] | None = None
    contains: tuple[str, str] | None = None
    within: tuple[str, float | None, float | None] | None = None
    flag: tuple[str, bool] | None = None


@dataclass(frozen=True)
class SearchQuery:
    """``exact``: compare with every point (no approximate index), so the answer is the true
    top ``limit``."""

    vector: Vector
    limit: int
    where: Where = field(default_factory=Where)
    exact: bool = False


@dataclass(frozen=True)
class StoredPoint:
    key: str
    payload: Payload
    vector: Vector | None = None


@dataclass(frozen=True)
class Hit:
    key: str
    score: float
    payload: Payload


class VectorStore(Protocol):
    """What recstream needs from a vector database. Collections hold one vector per point, by
    cosine similarity: one dense vector, or a hybrid one as a dense and a sparse part."""

    exclusive: bool
    """True when no other process can write this store (so a process may cache what it holds)."""

    def ensure_collection(
        self,
        name: str,
        dim: int,
        indexes: Mapping[str, FieldKind] | None = None,
        lexical: int = 0,
    ) -> None:
        """Create the collection (and payload indexes) unless it exists; check its dimension.
        ``lexical`` > 0: the vectors are hybrid, their last ``lexical`` numbers kept as a sparse
        vector (:mod:`stream.store.hybrid`); a collection made before with one dense vector of
        ``dim`` is used as it is."""

    def sparse_width(self, collection: str) -> int:
        """The length of the sparse part of the (ensured) collection's vectors: 0 where they are
        stored whole, as one dense vector (collections made before sparse vectors too)."""
        ...

    def upsert(self, collection: str, points: Sequence[StoredPoint]) -> None:
        """Insert or replace whole points (vector and payload); durable when it returns."""

    def set_payload(self, collection: str, payloads: Mapping[str, Payload]) -> None:
        """Merge fields into existing points' payloads, by key."""

    def update_vectors(self, collection: str, vectors: Mapping[str, Vector]) -> None:
        """Replace existing points' vectors, their payloads untouched (missing keys ignored)."""

    def delete(self, collection: str, keys: Sequence[str]) -> None:
        """Remove points; unknown keys are ignored."""

    def retrieve(
        self,
        collection: str,
        keys: Sequence[str],
        with_vectors: bool = False,
        fields: Sequence[str] | None = None,
    ) -> dict[str, StoredPoint]:
        """The points that exist among ``keys``; with ``fields``, only those payload fields
        (large payloads cost more to read than the vectors)."""

    def search(self, collection: str, queries: Sequence[SearchQuery]) -> list[list[Hit]]:
        """Nearest points by cosine similarity, one list per query, best first, in one call."""

    def keys_where(self, collection: str, where: Where, limit: int | None = None) -> list[str]:
        """Keys of points matching a filter (no ranking): all of them, page by page, unless
        ``limit`` says how many at most."""

    def top_by(self, collection: str, field: str, limit: int) -> list[StoredPoint]:
        """The points with the largest values of a float payload field (indexed), largest first."""

    def scroll(
        self,
        collection: str,
        with_vectors: bool = False,
        fields: Sequence[str] | None = None,
        where: Where | None = None,
    ) -> Iterator[StoredPoint]:
        """Every point of the collection (with ``fields``, only those payload fields; with
        ``where``, only the points matching it)."""

    def count(self, collection: str) -> int: ...

    def drop_collection(self, name: str) -> None:
        """Remove the collection with every point in it; nothing when it does not exist."""

    def flush(self) -> None:
        """Make every write so far durable on disk."""

    def close(self) -> None: ...


class StoreError(Exception):
    """Root of vector store errors."""


class DimensionMismatch(StoreError, Refused):
    """The collection exists with vectors of another size (another model?)."""


class StoreLocked(StoreError, Refused):
    """The embedded store's directory is open in another process."""


class StoreUnavailable(StoreError, Transient):
    """The engine failed or timed out; the operation may succeed if retried."""


@contextmanager
def engine_calls(lock: threading.RLock, engine: str) -> Iterator[None]:
    """Serialise an adapter's engine calls and report engine failures as
    :class:`StoreUnavailable` (retriable); our own errors pass through unchanged."""
    with lock:
        try:
            yield
        except (StoreError, KeyError, ValueError):
            raise  # ours: a programming or configuration error, not an outage
        except Exception as exc:
            raise StoreUnavailable(f"{engine}: {type(exc).__name__}: {exc}"[:500]) from exc


def payload_fields(fields: Sequence[str] | None) -> bool | list[str]:
    """What to ask an engine for: the whole payload, or the fields and the key."""
    return True if fields is None else sorted({*fields, "key"})


def as_vector(values: Sequence[float] | Vector) -> Vector:
    return np.asarray(values, dtype=np.float32)


def runs_of_same(pairs: Sequence[tuple[Id, Payload]]) -> list[tuple[list[Id], Payload]]:
    """``pairs`` of (point id, payload) as runs of consecutive pairs that share one payload
    object, each with its ids: one payload write per run (a batch's ``{lists_pending: false}``
    for all its items, given as one dict, is one write, not one per item). The same object, not
    equal ones: ``{"n": 1} == {"n": True}``, and each point must get its own types."""
    runs: list[tuple[list[Id], Payload]] = []
    for point, payload in pairs:
        if runs and runs[-1][1] is payload:
            runs[-1][0].append(point)
        else:
            runs.append(([point], payload))
    return runs
