"""An exact in-memory copy of the items collection: every vector, version and recorded list.

The catalog consumer asks two questions of every batch: which items are nearest to each changed
item, and whose lists each changed item now enters (``cos(X, Y) > Y.floor``). Both are matrix
products against the catalogue (:mod:`stream.catalog.search`), pruned to the clusters that can
matter once the catalogue is large (:mod:`stream.catalog.partition`), where the embedded engine
scans the catalogue once per query (see bench/README.md). It also answers, without a store
call, what was last published for an item and which lists name an item. The store stays the
record: this copy is built from it (:class:`stream.catalog.neighbours.MemoryFinder`), follows
each write the consumer makes, and is rebuilt after any failure.

Only one process may write the store for the copy to stay true: that holds for the embedded
engine (a shard opens in one process) and qdrant-client's local mode, not for a shared server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import structlog
import torch
from threadpoolctl import threadpool_limits

from stream.catalog.lists import NO_FLOOR, NeighbourState
from stream.catalog.partition import MIN_ROWS, Partition, Rebuild, Sorted, members
from stream.catalog.rough import rough_top
from stream.catalog.search import Clusters, Found, Screen, screen_slack, search
from stream.store.base import Vector

log = structlog.get_logger(__name__)

_NO_LIST = -1
_ROW_ARRAYS = ("_floors", "_ids", "_scores", "_lengths", "_cluster", "_hidden")
"""A :class:`MemoryIndex`'s per-row arrays beside its matrix (and bfloat16 copy), by name."""
SKIP_CLUSTERS = 8
"""For an index whose queries are spread (shoppers' profiles: ``skip_failed_clusters``), the
searches of one kind (top k only, or with entries) that go straight to the full product after
the clusters of such a search failed to prune (their first round was scored for nothing),
before the clusters are tried again. Not for the catalog's index: one spread batch there would
make the next single-item searches read the whole catalogue."""


class MemoryIndex:
    """Item vectors (unit length, float32), versions and recorded lists, by key, with
    swap-remove deletes.

    A recorded list is kept as rows of arrays, not as Python objects (12 bytes per entry, so
    12 MB per 100,000 items at k = 10): its ids as serial numbers (one per key ever named, never
    reused), its scores, its length (-1: no list recorded) and its floor. A list recorded with a
    larger k than this index's is cut to k.

    From ``min_rows`` items on, rows are also clustered (:class:`Partition`, made again once
    half as many items as it was made from were added or moved, or half are gone), so that
    searches read only the clusters that can matter. The clusters are made on a worker thread
    (``background``; :class:`Rebuild`) and put to use by the first search after they are done.
    An index made with ``rough`` searches a bfloat16 copy instead and makes no clusters.
    """

    def __init__(
        self,
        dim: int,
        k: int,
        min_rows: int = MIN_ROWS,
        background: bool = True,
        screen: bool = False,
        skip_failed_clusters: bool = False,
        cluster_order: bool = True,
        rough: bool = False,
        records: bool = True,
    ) -> None:
        """``screen``: keep a bfloat16 copy of the rows too (2 bytes a number beside the 4 of
        float32), which searches score roughly first (:class:`stream.catalog.search.Screen`).
        ``rough``: keep that copy for top k searches from ``min_rows`` rows on, which are then
        near-exact (:mod:`stream.catalog.rough`: for shoppers' profiles) and make no clusters;
        searches with entries stay exact. Without ``records`` it keeps no recorded lists (no
        room for them either: k numbers of 12 bytes per row).
        ``skip_failed_clusters``: see :data:`SKIP_CLUSTERS`. ``cluster_order``: keep the rows in
        cluster order (copied so whenever clusters are made; for a moment the matrix is held
        twice), so that a search reads each cluster's rows in place."""
        self.dim = dim
        self.k = k
        self.keys: list[str] = []
        self.rows: dict[str, int] = {}
        self.versions: dict[str, int | None] = {}
        self._serials: dict[str, int] = {}
        self._named: list[str] = []
        self._matrix = np.zeros((0, dim), dtype=np.float32)
        self._floors = np.zeros(0, dtype=np.float64)
        width = k if records else 0
        self._ids = np.zeros((0, width), dtype=np.int32)
        self._scores = np.zeros((0, width), dtype=np.float64)
        self._lengths = np.zeros(0, dtype=np.int16)
        self._cluster = np.zeros(0, dtype=np.int16)
        self._hidden = np.zeros(0, dtype=np.bool_)
        self._rough = torch.empty((0, dim), dtype=torch.bfloat16) if screen or rough else None
        self._screen = screen
        self._rough_top = rough
        self._any_hidden = False
        self.min_rows = min_rows
        self._partition: Partition | None = None
        self._rebuild: Rebuild | None = None
        self._background = background
        self._members: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]] | None = None
        self._skip_after_failure = SKIP_CLUSTERS if skip_failed_clusters else 0
        self._cluster_order = cluster_order
        self._renumbered: npt.NDArray[np.intp] | None = None
        """Each row's new number, when the search under way put the rows in cluster order."""
        self._skip_clusters = {True: 0, False: 0}
        """Per kind of search (entries wanted or not): full products still to run without
        trying the clusters (:data:`SKIP_CLUSTERS`)."""
        self.reserve(1_024)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def matrix(self) -> Vector:
        return self._matrix[: len(self.keys)]

    @property
    def floors(self) -> npt.NDArray[np.float64]:
        return self._floors[: len(self.keys)]

    @property
    def hidden(self) -> npt.NDArray[np.bool_] | None:
        """Rows no list may name (items out of stock where lists are in stock only); None
        when there are none."""
        hidden = self._hidden[: len(self.keys)]
        return hidden if self._any_hidden and hidden.any() else None

    def hide(self, flags: Mapping[str, bool]) -> None:
        """Mark stored keys as hidden (True) or nameable (False) in lists."""
        rows = [self.rows[k] for k in flags if k in self.rows]
        if rows:
            self._hidden[rows] = [flags[k] for k in flags if k in self.rows]
            self._any_hidden = self._any_hidden or any(flags.values())

    def put(
        self, vectors: Mapping[str, Vector], versions: Mapping[str, int | None] | None = None
    ) -> None:
        """Insert or replace vectors (and versions); a new key has no recorded list yet, a
        replaced one keeps its own (as the store keeps the recorded list across an upsert)."""
        new = [k for k in vectors if k not in self.rows]
        self.reserve(len(self.keys) + len(new))
        for key in new:
            row = len(self.keys)
            self.rows[key] = row
            self._floors[row] = NO_FLOOR
            self._lengths[row] = _NO_LIST
            self._ids[row] = _NO_LIST  # not a removed item's list: listing() reads every column
            self._hidden[row] = False
            self.keys.append(key)
        for key, version in (versions or {}).items():
            if key in self.rows:
                self.versions[key] = version
        if not vectors:
            return
        rows = [self.rows[k] for k in vectors]
        block = np.array(list(vectors.values()), dtype=np.float32).reshape(len(rows), self.dim)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        block /= np.where(norms > 0, norms, 1)  # in place: a fresh array, no second copy
        self._matrix[rows] = block
        if self._rough is not None:
            self._rough[rows] = torch.from_numpy(block).bfloat16()
        self._members = None
        if self._partition is not None:
            self._cluster[rows] = self._partition.assign(self._matrix[rows])
        if self._rebuild is not None:
            self._rebuild.changed.update(rows)

    def remove(self, keys: Iterable[str]) -> None:
        for key in keys:
            row = self.rows.pop(key, None)
            if row is None:
                continue
            self.versions.pop(key, None)
            last = len(self.keys) - 1
            if row != last:
                moved = self.keys[last]
                for array in self._columns():
                    array[row] = array[last]
                if self._rough is not None:
                    self._rough[row] = self._rough[last]
                self.keys[row] = moved
                self.rows[moved] = row
                if self._rebuild is not None:
                    self._rebuild.changed.add(row)
            self.keys.pop()
            self._members = None

    def set_lists(self, lists: Mapping[str, NeighbourState]) -> None:
        """Record these lists as published (keys not stored are ignored)."""
        rows: list[int] = []
        ids: list[int] = []
        scores: list[float] = []
        lengths: list[int] = []
        floors: list[float] = []
        k = self.k
        if lists and self._ids.shape[1] != k:
            raise ValueError("this index keeps no recorded lists")
        serial = self._serials.get
        for key, state in lists.items():
            row = self.rows.get(key)
            if row is None:
                continue
            size = min(len(state.ids), k)
            rows.append(row)
            known = list(map(serial, state.ids[:size]))  # most ids were named before
            if None in known:
                ids.extend([self._serial(i) for i in state.ids[:size]])
            else:
                ids.extend(cast("list[int]", known))
            ids.extend([_NO_LIST] * (k - size))
            scores.extend(state.scores[:size])
            scores.extend([0.0] * (k - size))
            lengths.append(size)
            floors.append(state.floor(k))
        if rows:
            self._ids[rows] = np.asarray(ids, dtype=np.int32).reshape(len(rows), k)
            self._scores[rows] = np.asarray(scores, dtype=np.float64).reshape(len(rows), k)
            self._lengths[rows] = lengths
            self._floors[rows] = floors

    def recorded(self, keys: Iterable[str]) -> dict[str, NeighbourState | None]:
        """The list last published for each stored key among ``keys`` (None: none recorded)."""
        found = [k for k in keys if k in self.rows]
        rows = [self.rows[k] for k in found]
        named = self._named
        out: dict[str, NeighbourState | None] = {}
        for key, size, ids, scores in zip(
            found,
            self._lengths[rows].tolist(),
            self._ids[rows].tolist(),
            self._scores[rows].tolist(),
            strict=True,
        ):
            if size == _NO_LIST:
                out[key] = None
            else:
                out[key] = NeighbourState(
                    tuple(map(named.__getitem__, ids[:size])), tuple(scores[:size])
                )
        return out

    def listing(self, keys: Iterable[str]) -> set[str]:
        """Stored keys whose recorded list names any of ``keys``."""
        serials = [self._serials[k] for k in keys if k in self._serials]
        if not serials or not self.keys:
            return set()
        ids = self._ids[: len(self.keys)]
        # a lookup table over the serial range: linear in the catalogue, whatever len(keys)
        hits = np.isin(ids, np.asarray(serials, dtype=np.int32), kind="table").any(axis=1)
        return {self.keys[row] for row in np.flatnonzero(hits).tolist()}

    def unrecorded(self, limit: int, skip: Iterable[str] = ()) -> list[str]:
        """Up to ``limit`` stored keys with no recorded list, ``skip`` left out, in row order."""
        missing = self._lengths[: len(self.keys)] < 0
        missing[[self.rows[k] for k in skip if k in self.rows]] = False
        return [self.keys[row] for row in np.flatnonzero(missing)[:limit].tolist()]

    def vectors(self, keys: Iterable[str]) -> dict[str, Vector]:
        return {k: self._matrix[self.rows[k]] for k in keys if k in self.rows}

    def search(
        self, queries: Vector, own: npt.NDArray[np.intp], no_entry: npt.NDArray[np.intp] | None
    ) -> Found:
        """Each query's top k and (unless ``no_entry`` is None) the rows whose lists it enters,
        exactly (:func:`stream.catalog.search.search`); ``own``: each query's own row or -1.

        A row with no recorded list is never reported as entered: every query enters it (its
        floor is the lowest), and after a loss of records that is queries x catalogue entries;
        :meth:`unrecorded` names those rows instead. With ``skip_failed_clusters``, after the
        clusters failed to prune a search, the next :data:`SKIP_CLUSTERS` of its kind run the
        full product at once. With ``rough``, a top k search from ``min_rows`` rows on is
        :func:`stream.catalog.rough.rough_top`'s, near-exact.

        New clusters are put to use here, and with them the rows put in cluster order: ``own``
        and ``no_entry``, named before the call, are read in the order they were named in."""
        self._renumbered = None
        rows = len(self.keys)
        if self._rough_top and no_entry is None and rows >= self.min_rows:
            assert self._rough is not None
            tops, scores = rough_top(
                self.matrix, self._rough[:rows], queries, own, self.k, self.hidden
            )
            return Found(tops, scores, scored_rows=len(queries) * rows)
        clusters = self._clusters()
        if self._renumbered is not None:
            own = _renumber(own, self._renumbered)
            if no_entry is not None:
                no_entry = _renumber(no_entry, self._renumbered)
        kind = no_entry is not None
        if clusters is not None and self._skip_clusters[kind] > 0:
            self._skip_clusters[kind] -= 1
            clusters = None
        if no_entry is not None:
            unrecorded = np.flatnonzero(self._lengths[:rows] < 0)
            no_entry = np.concatenate([no_entry, unrecorded])
        screen = None
        if self._screen and self._rough is not None:
            screen = Screen(self._rough[:rows], screen_slack(self.dim))
        found = search(
            self.matrix, self.floors, queries, own, self.k, no_entry, clusters, self.hidden, screen
        )
        if found.clustered is False:
            self._skip_clusters[kind] = self._skip_after_failure
        return found

    def settle(self) -> None:
        """Make the clusters that are due (or being made), wait for them and put them to use."""
        self._clusters()
        if self._rebuild is not None:
            self._rebuild.wait()
            self._clusters()

    def _clusters(self) -> Clusters | None:
        """The clusters to search with (None: a full scan), made again when stale."""
        rows = len(self.keys)
        if rows < self.min_rows:
            self._partition = self._members = self._rebuild = None
            return None
        if self._rebuild is None and (self._partition is None or self._partition.stale(rows)):
            capacity, rough = None, None
            if self._cluster_order:
                capacity = len(self._floors)
                rough = None if self._rough is None else self._rough[:rows]
            self._rebuild = Rebuild(self.matrix, self._background, capacity, rough)
        if self._rebuild is not None and self._rebuild.done():  # at once unless background
            rebuild, self._rebuild = self._rebuild, None
            self._install(rebuild)
        if self._partition is None:
            return None
        of_row = self._cluster[:rows]
        if self._members is None:
            self._members = members(of_row, len(self._partition))
        return Clusters(self._partition, of_row, *self._members)

    def _install(self, rebuild: Rebuild) -> None:
        """Use ``rebuild``'s clusters: its rows keep the clusters it gave them, except rows
        written since it started (and rows added since), which are assigned again, raising radii
        as a write does."""
        try:
            partition, nearest = rebuild.result()
        except Exception:
            log.exception("neighbours.clusters_failed", items=rebuild.rows)
            return  # the clusters in use (or none) stay: searches stay exact
        rows = len(self.keys)
        kept = min(rebuild.rows, rows)
        again = np.asarray(
            sorted({r for r in rebuild.changed if r < kept} | set(range(kept, rows))),
            dtype=np.intp,
        )
        nearest_again = partition.assign(self._matrix[again])  # first: it may fail
        self._cluster[:kept] = nearest[:kept]
        self._cluster[again] = nearest_again
        self._partition, self._members = partition, None
        self._skip_clusters = {True: 0, False: 0}  # new clusters: tried at once
        if rebuild.sorted is not None:
            self._adopt(rebuild.sorted, rebuild.changed)
        log.info(
            "neighbours.clusters_built",
            items=rows,
            clusters=len(partition),
            assigned_again=len(again),
            build_s=round(rebuild.seconds, 2),
        )

    def _adopt(self, layout: Sorted, changed: set[int]) -> None:
        """Take over the matrix (and bfloat16 copy) the rebuild copied in cluster order, and put
        every other per-row array and the keys in that order too; rows written since it read
        them are copied again from the arrays in use, rows added since go after. Nothing is
        taken over when rows were dropped below what it read, or the arrays grew meanwhile
        (the next rebuild sorts). Rows are this index's own numbers, never kept outside a call:
        the search that puts the clusters to use reads the rows its caller named through
        :attr:`_renumbered`. Everything is made before anything is replaced."""
        order = layout.order
        read, used = len(order), len(self.keys)
        if used < read or len(layout.matrix) != len(self._floors):
            return
        position = np.empty(read, dtype=np.intp)
        position[order] = np.arange(read)
        mend = np.fromiter((r for r in changed if r < read), dtype=np.intp)
        layout.matrix[position[mend]] = self._matrix[mend]
        layout.matrix[read:used] = self._matrix[read:used]
        if layout.rough is not None and self._rough is not None:
            layout.rough[torch.from_numpy(position[mend])] = self._rough[torch.from_numpy(mend)]
            layout.rough[read:used] = self._rough[read:used]
        columns = {}
        for name in _ROW_ARRAYS:
            array = getattr(self, name)
            columns[name] = np.concatenate([array[order], array[read:]])
        head = [self.keys[row] for row in order.tolist()]
        # nothing below can fail: every array and key is replaced together
        self._matrix, self._rough = layout.matrix, layout.rough
        for name, array in columns.items():
            setattr(self, name, array)
        self.keys[:read] = head
        self.rows.update((key, row) for row, key in enumerate(head))
        self._members = None
        self._renumbered = position

    def _serial(self, key: str) -> int:
        serial = self._serials.get(key)
        if serial is None:
            serial = self._serials[key] = len(self._named)
            self._named.append(key)
        return serial

    def reserve(self, size: int) -> None:
        """Room for ``size`` rows, so that adding up to that many copies nothing: a load that
        knows the catalogue's size reserves it first (growing doubles the arrays, and holds the
        old and the new matrix at once)."""
        capacity = len(self._floors)
        if size <= capacity:
            return
        capacity = max(size, 2 * capacity)
        used = len(self.keys)

        def grown(array: npt.NDArray[Any], fill: float) -> npt.NDArray[Any]:
            shape = (capacity, *array.shape[1:])
            # zeros: pages the OS maps on first touch; np.full writes all of them, several
            # times slower for a large matrix (bench/README.md)
            if fill == 0:
                out = np.zeros(shape, dtype=array.dtype)
            else:
                out = np.full(shape, fill, dtype=array.dtype)
            out[:used] = array[:used]
            return out

        self._matrix = grown(self._matrix, 0.0)
        self._floors = grown(self._floors, NO_FLOOR)
        self._ids = grown(self._ids, _NO_LIST)
        self._scores = grown(self._scores, 0.0)
        self._lengths = grown(self._lengths, _NO_LIST)
        self._cluster = grown(self._cluster, 0)
        self._hidden = grown(self._hidden, 0)
        if self._rough is not None:
            rough = torch.empty((capacity, self.dim), dtype=torch.bfloat16)  # pages untouched
            rough[:used] = self._rough[:used]
            self._rough = rough

    def _columns(self) -> tuple[npt.NDArray[Any], ...]:
        """Every per-row array."""
        return (self._matrix, *(getattr(self, name) for name in _ROW_ARRAYS))


def _renumber(rows: npt.NDArray[np.intp], position: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """Rows named before they were put in cluster order, as numbered now (``position``: each
    old row's new one, for the rows that moved; -1 stays -1)."""
    rows = np.asarray(rows, dtype=np.intp)
    moved = (rows >= 0) & (rows < len(position))
    out = rows.copy()
    out[moved] = position[rows[moved]]
    return out


def unit(vectors: Vector) -> Vector:
    """Rows scaled to length 1 (zero rows left as they are), as the engine stores cosine vectors."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1)).astype(np.float32, copy=False)


def leave_cores_to_encoder(*, torch_threads: bool) -> None:
    """Run this index's matrix products on one thread, for the whole process: for a process
    whose encoder runs on the CPU, with its own threads on every core. numpy's BLAS always;
    torch's too (``torch_threads``) unless torch runs the model on the CPU, where its thread
    count is the encoder's.

    OpenBLAS's idle workers spin for a while after each product; with products every few
    milliseconds (small batches under a steady load) they take a good part of a core from the
    encoder, and tail latency under a steady load is much lower with one thread
    (bench/README.md). Big products (bulk batches) lose little: the encoder's threads have the
    other cores meanwhile.
    """
    limited = threadpool_limits(limits=1, user_api="blas")
    if torch_threads:
        torch.set_num_threads(1)
    log.debug(
        "neighbours.product_threads",
        threads=1,
        torch=torch_threads,
        blas_before=limited.get_original_num_threads(),
    )
