"""An exact in-memory copy of the items collection: every vector and every list's floor.

The catalog consumer asks two questions of every batch: which items are nearest to each changed
item, and whose lists each changed item now enters (``cos(X, Y) > Y.floor``). Against the whole
catalogue at once, both are one matrix product: ``changed x catalogue``, a few hundred
milliseconds for 256 items against 100,000 on two cores, where the embedded engine scans the
catalogue once per query (see bench/README.md). The store stays the record: this copy is built
from it (``load``), follows each write the consumer makes, and is rebuilt after any failure.

Only one process may write the store for the copy to stay true: that holds for the embedded
engine (a shard opens in one process) and qdrant-client's local mode, not for a shared server.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import numpy.typing as npt

from stream.store import VectorStore
from stream.store.base import Vector

NO_FLOOR = -2.0
"""Floor of a list shorter than k, or of an item with no recorded list: any item qualifies."""
_CHUNK_CELLS = 16_000_000
"""Scores computed at once (64 MB of float32): queries are split to stay under it."""


class MemoryIndex:
    """Item vectors (unit length, float32) and list floors, by key, with swap-remove deletes."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.keys: list[str] = []
        self.rows: dict[str, int] = {}
        self._matrix = np.zeros((1_024, dim), dtype=np.float32)
        self._floors = np.full(1_024, NO_FLOOR, dtype=np.float64)

    @classmethod
    def load(cls, store: VectorStore, collection: str, dim: int) -> MemoryIndex:
        """Read every point's vector and recorded floor from the store."""
        index = cls(dim)
        floors: dict[str, float] = {}
        vectors: dict[str, Vector] = {}
        for point in store.scroll(collection, with_vectors=True):
            if point.vector is None:
                continue
            vectors[point.key] = point.vector
            floor = point.payload.get("nb_floor")
            if isinstance(floor, int | float) and not isinstance(floor, bool):
                floors[point.key] = float(floor)
        index.put(vectors)
        index.set_floors(floors)
        return index

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def matrix(self) -> Vector:
        return self._matrix[: len(self.keys)]

    @property
    def floors(self) -> npt.NDArray[np.float64]:
        return self._floors[: len(self.keys)]

    def put(self, vectors: Mapping[str, Vector]) -> None:
        """Insert or replace vectors; a new key has no floor yet, a replaced one keeps its own
        (as the store keeps the recorded list across an upsert)."""
        new = [k for k in vectors if k not in self.rows]
        self._reserve(len(self.keys) + len(new))
        for key in new:
            self.rows[key] = len(self.keys)
            self._floors[len(self.keys)] = NO_FLOOR
            self.keys.append(key)
        if not vectors:
            return
        rows = [self.rows[k] for k in vectors]
        block = np.asarray(list(vectors.values()), dtype=np.float32).reshape(len(rows), self.dim)
        self._matrix[rows] = unit(block)

    def remove(self, keys: Iterable[str]) -> None:
        for key in keys:
            row = self.rows.pop(key, None)
            if row is None:
                continue
            last = len(self.keys) - 1
            if row != last:
                moved = self.keys[last]
                self._matrix[row] = self._matrix[last]
                self._floors[row] = self._floors[last]
                self.keys[row] = moved
                self.rows[moved] = row
            self.keys.pop()

    def set_floors(self, floors: Mapping[str, float]) -> None:
        for key, floor in floors.items():
            row = self.rows.get(key)
            if row is not None:
                self._floors[row] = floor

    def vectors(self, keys: Iterable[str]) -> dict[str, Vector]:
        return {k: self._matrix[self.rows[k]] for k in keys if k in self.rows}

    def scores(self, queries: Vector) -> Iterator[tuple[slice, Vector]]:
        """Cosine of each query with every item, in chunks of queries: (rows of ``queries``,
        their ``len(chunk) x len(self)`` scores)."""
        step = max(1, _CHUNK_CELLS // max(1, len(self.keys)))
        for start in range(0, len(queries), step):
            part = slice(start, min(start + step, len(queries)))
            yield part, queries[part] @ self.matrix.T

    def _reserve(self, size: int) -> None:
        if size <= len(self._floors):
            return
        capacity = max(size, 2 * len(self._floors))
        matrix = np.zeros((capacity, self.dim), dtype=np.float32)
        matrix[: len(self.keys)] = self.matrix
        floors = np.full(capacity, NO_FLOOR, dtype=np.float64)
        floors[: len(self.keys)] = self.floors
        self._matrix, self._floors = matrix, floors


def unit(vectors: Vector) -> Vector:
    """Rows scaled to length 1 (zero rows left as they are), as the engine stores cosine vectors."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1)).astype(np.float32, copy=False)
