"""Clusters of the catalogue's vectors, each with a bound on how near any member can be to a
query: what lets an exact search skip most of the catalogue.

Spherical k-means gives the centroids; each cluster keeps its radius, the largest angle between
its centroid and a member. For a query at angle ``a`` from a centroid, the triangle inequality
on the sphere puts every member at an angle of at least ``a - radius``, so at a cosine of at
most ``cos(max(0, a - radius))``. A search scores only the clusters whose bound can beat what it
looks for (a list's floor, the query's k-th best so far). How much that skips depends on the
catalogue: most of the rows where items form tight groups, little or none where lists' floors
are low (bench/README.md).

Radii are only ever raised between rebuilds (an item added or moved raises its cluster's; a
deleted one leaves it), so each stays an upper bound: the answers stay exact, however stale the
clusters get, and only the pruning weakens until the next rebuild (once half as many items as
the clusters were made from have been added or moved since, or half of those are gone).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import structlog
import torch

from stream.store.base import Vector

log = structlog.get_logger(__name__)

MIN_ROWS = 20_000
"""Below this a full scan costs a few milliseconds: no clusters."""
MAX_CLUSTERS = 1_024
SCORE_SLACK = 1e-4
"""Added to every bound: float32 scores of float32 unit vectors may exceed the exact cosine by
~1e-5 (rounding of the vectors' lengths and of the product)."""
ANGLE_SLACK = 1e-6
"""Taken off every gap between a query's angle and a radius (radians): float64 rounding."""
_SAMPLE_PER_CLUSTER = 64
_CHUNK = 16_384
_ITERATIONS = 6
_EMPTY = -1.0
"""Radius of a cluster with no member: nothing in it to score."""

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.intp]


class Partition:
    """Centroids (unit, float64) and radii (radians) of the clusters of one catalogue."""

    def __init__(self, centroids: Floats, radii: Floats, built_rows: int) -> None:
        self.centroids = centroids
        self.radii = radii
        self.built_rows = built_rows
        self.assigned = -built_rows
        """Rows added or moved since the build (the build's own assignment counted out)."""

    def __len__(self) -> int:
        return len(self.centroids)

    @classmethod
    def build(cls, matrix: Vector, seed: int = 0) -> tuple[Partition, Ints]:
        """Clusters of ``matrix``'s rows (unit vectors) and the cluster of each row: k-means on
        a sample, then every row to its nearest centroid."""
        rows = len(matrix)
        count = max(1, min(MAX_CLUSTERS, round(math.sqrt(rows))))
        rng = np.random.default_rng(seed)
        sample = matrix[np.sort(rng.choice(rows, min(rows, count * _SAMPLE_PER_CLUSTER), False))]
        centroids = sample[rng.choice(len(sample), count, replace=False)].astype(np.float64)
        for _ in range(_ITERATIONS):
            nearest = np.argmax(sample @ centroids.T.astype(np.float32), axis=1)
            total = _sums(sample, nearest, count)
            norms = np.linalg.norm(total, axis=1, keepdims=True)
            # a cluster the sample left empty keeps its centroid
            centroids = np.where(norms > 0, total / np.where(norms > 0, norms, 1), centroids)
        partition = cls(centroids, np.full(count, _EMPTY), rows)
        # in chunks: assign() works in float64 (300 MB at once for 100,000 x 384)
        parts = [partition.assign(matrix[i : i + _CHUNK]) for i in range(0, rows, _CHUNK)]
        return partition, np.concatenate(parts)

    def assign(self, vectors: Vector) -> Ints:
        """The nearest cluster of each vector (unit rows), its radius raised to take it in."""
        if not len(vectors):
            return np.zeros(0, dtype=np.intp)
        nearest: Ints = np.argmax(vectors @ self.centroids.T.astype(np.float32), axis=1)
        # 2 asin(|x - c| / 2) of x scaled to length 1 in float64: arccos(x . c) near 1 turns a
        # float32 vector's length (1 +- 1e-7) into an angle ~4e-4 radians short
        gaps = _unit64(vectors) - self.centroids[nearest]
        angles = 2 * np.arcsin(np.minimum(np.linalg.norm(gaps, axis=1) / 2, 1.0))
        np.maximum.at(self.radii, nearest, angles)
        self.assigned += len(vectors)
        return nearest

    def bounds(self, queries: Vector) -> Floats:
        """``len(queries) x len(self)``: the highest score any member of each cluster can have
        with each query (-inf for an empty cluster)."""
        # arccos is off by up to ~4e-4 radians near 0 here too, but only where the gap is
        # ~0 already: cos(gap) moves by ~1e-7
        cosines = np.clip(_unit64(queries) @ self.centroids.T, -1.0, 1.0)
        gap = np.maximum(np.arccos(cosines) - self.radii[np.newaxis, :] - ANGLE_SLACK, 0.0)
        out = np.cos(gap) + SCORE_SLACK
        out[:, self.radii < 0] = -np.inf
        return out

    def stale(self, rows: int) -> bool:
        """Time to rebuild: half as many rows as the build saw added or moved since, or the
        catalogue down to half its size (radii only grow, so pruning weakens with change)."""
        return 2 * self.assigned > self.built_rows or 2 * rows < self.built_rows


class Rebuild:
    """A :class:`Partition` made of the catalogue, on a worker thread unless ``background`` is
    False: a build takes long enough that, on the loop's thread, it held up a batch (and every
    event queued behind it) each time the catalogue grew by half. Meanwhile the index searches
    with the clusters it has (still exact) or, before the first, the full product.

    The worker reads the index's matrix while the index writes it: ``changed`` collects the
    rows written since the start (which the worker may have read before, after or half-way
    through the write), and those are assigned again, from what they hold then, when the result
    is installed. A row read half-written can only make a centroid a little off, never a radius
    too small.

    With ``capacity``, the worker then also copies the rows it read into new arrays of that
    many rows in cluster order (:class:`Sorted`; ``rough``, the index's bfloat16 copy, too),
    for the index to take over at install, mending the rows written since. On the worker, not
    the loop's thread: copying the matrix (fresh pages, all of them written) stalled the loop
    1.1 s at 100,000 items of 1,408 numbers, and the events waiting on it were the slowest
    (bench/README.md). Until the index takes them over, the matrix is held twice.
    """

    def __init__(
        self,
        matrix: Vector,
        background: bool = True,
        capacity: int | None = None,
        rough: torch.Tensor | None = None,
    ) -> None:
        self.rows = len(matrix)
        self.changed: set[int] = set()
        self.seconds = 0.0
        self.capacity = capacity
        self._rough = rough
        self.sorted: Sorted | None = None
        self._result: tuple[Partition, Ints] | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(
                target=self._build, args=(matrix,), name="clusters", daemon=True
            )
            self._thread.start()
        else:
            self._build(matrix)

    def _build(self, matrix: Vector) -> None:
        if self._thread is not None:
            _lower_priority()
        started = time.perf_counter()
        try:
            self._result = Partition.build(matrix)
        except BaseException as exc:  # handed to the index's thread by result()
            self._error = exc
        try:
            if self._result is not None and self.capacity is not None:
                self.sorted = Sorted.of(matrix, self._rough, self._result[1], self.capacity)
        except (MemoryError, RuntimeError) as exc:  # torch's allocations raise RuntimeError
            # the clusters are still of use: the rows stay where they are
            log.warning("neighbours.sort_failed", rows=self.rows, error=str(exc)[:200])
        finally:
            self._rough = None
            self.seconds = time.perf_counter() - started

    def done(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def result(self) -> tuple[Partition, Ints]:
        """The partition and the cluster of each row it read (call when :meth:`done`);
        raises what the build raised."""
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


_SORT_CHUNK = 65_536
"""Rows copied at once into the arrays in cluster order."""


@dataclass(frozen=True)
class Sorted:
    """Copies of an index's rows in cluster order, so that each cluster's rows are one run of
    the matrix, which a search reads in place instead of gathering it (the gathers took about
    as long as the products at 100,000 items: bench/README.md). Row ``order[i]`` of the
    original is row ``i`` here; the arrays have room for ``capacity`` rows."""

    order: Ints
    matrix: Vector
    rough: torch.Tensor | None

    @classmethod
    def of(
        cls, matrix: Vector, rough: torch.Tensor | None, clusters: Ints, capacity: int
    ) -> Sorted:
        rows = len(matrix)
        order = np.argsort(clusters[:rows], kind="stable")
        out = np.zeros((capacity, matrix.shape[1]), dtype=matrix.dtype)
        copy = (
            None if rough is None else torch.empty((capacity, matrix.shape[1]), dtype=rough.dtype)
        )
        for start in range(0, rows, _SORT_CHUNK):
            chunk = order[start : start + _SORT_CHUNK]
            # "clip" (the rows are in range): with "raise" numpy fills a buffer of the chunk
            # first and copies it
            np.take(matrix, chunk, axis=0, out=out[start : start + len(chunk)], mode="clip")
            if copy is not None and rough is not None:
                at = torch.from_numpy(chunk)
                torch.index_select(rough, 0, at, out=copy[start : start + len(chunk)])
        return cls(order, out, copy)


def _sums(rows: Vector, groups: Ints, count: int) -> Floats:
    """The sum of ``rows`` in each of ``count`` groups (float64), by one sort (:func:`members`):
    np.add.at is far slower (bench/README.md), and torch's index_add_ runs on torch's own
    threads, which do not keep to the worker's low priority."""
    order, starts = members(groups, count)
    present = np.flatnonzero(np.diff(starts))
    out = np.zeros((count, rows.shape[1]))
    if len(present):
        out[present] = np.add.reduceat(rows[order], starts[present], axis=0, dtype=np.float64)
    return out


def _lower_priority() -> None:
    """Let the calling thread yield the cores to the rest of the process (Linux: a thread's
    nice value is its own): the encoder and the consumer loop come first."""
    # not Linux, or not allowed: the default priority
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def _unit64(vectors: Vector) -> Floats:
    out = vectors.astype(np.float64)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)


def members(clusters: npt.NDArray[np.integer], count: int) -> tuple[Ints, Ints]:
    """Rows by cluster: ``order[starts[c]:starts[c + 1]]`` are cluster c's rows, ascending."""
    order = np.argsort(clusters, kind="stable")  # a radix sort for 16-bit keys
    starts = np.searchsorted(clusters[order], np.arange(count + 1))
    return order, starts
