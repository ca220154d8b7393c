"""Exact answers to the catalog consumer's two questions, from the in-memory index: each query's
top k, and every item whose list a query's score enters (``score > floor``).

Below :data:`stream.catalog.partition.MIN_ROWS` items every query is scored against every item
(one matrix product). Above, the index's clusters bound what each cluster can score, and only
clusters that can matter are scored, in two rounds:

1. each query's nearest clusters, until they hold more than k items: their k-th best score is a
   floor under the query's true k-th best;
2. every other cluster whose bound reaches that k-th best, or beats the lowest list floor among
   its items.

Nothing a full scan would find is left out: an item outside the scored clusters cannot score
above its cluster's bound. When the clusters that can matter hold more than a quarter of the
(query, row) pairs (lists shorter than k, a partition gone stale), one full product is
cheaper, and is what runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch

from stream.catalog.partition import Ints, Partition
from stream.store.base import Vector

_CHUNK_CELLS = 16_000_000
"""Scores computed at once in a full scan (64 MB of float32): queries are split to stay under."""
FULL_SCAN_SHARE = 0.25
"""Scan everything when the clusters that can matter hold more of the (query, row) pairs than
this: cluster by cluster, each pair costs several times what it does in one product
(bench/README.md)."""


@dataclass(frozen=True)
class Clusters:
    """An index's clusters as a search reads them."""

    partition: Partition
    of_row: npt.NDArray[np.int16]
    order: Ints
    """Rows by cluster (:func:`stream.catalog.partition.members`): cluster c's are
    ``order[starts[c]:starts[c + 1]]``, ascending."""
    starts: Ints


@dataclass
class Found:
    """Per query: its top k (rows and scores, best first) and the rows whose list it enters."""

    top_rows: list[Ints]
    top_scores: list[Vector]
    entries: list[tuple[int, int, float]] = field(default_factory=list)
    """(query, row, score)"""
    scored_rows: int = 0
    """Scores computed, summed over queries: how much of the catalogue the search read."""


def search(
    matrix: Vector,
    floors: npt.NDArray[np.float64],
    queries: Vector,
    own: Ints,
    k: int,
    no_entry: Ints | None,
    clusters: Clusters | None = None,
    hidden: npt.NDArray[np.bool_] | None = None,
) -> Found:
    """Search ``matrix`` (unit rows) for ``queries`` (unit rows).

    ``own``: each query's own row (-1: none), never its neighbour. ``no_entry``: rows never
    reported as entered (None: entries not wanted). ``clusters``: the index's, None for a full
    scan. ``hidden``: rows never in a top k (their own lists are still entered)."""
    if clusters is not None:
        blocks = _Blocks(matrix, floors, queries, own, k, no_entry, hidden)
        if _pruned(blocks, clusters):
            return blocks.found()
    # a fresh one: the pruned attempt's first round would be scored twice
    blocks = _Blocks(matrix, floors, queries, own, k, no_entry, hidden)
    step = max(1, _CHUNK_CELLS // max(1, len(matrix)))
    for start in range(0, len(queries), step):
        blocks.score(np.arange(start, min(start + step, len(queries))), None)
    return blocks.found()


def _pruned(blocks: _Blocks, clusters: Clusters) -> bool:
    """Score ``blocks`` cluster by cluster; False (stopped after the first round) when the
    clusters that can matter hold more than :data:`FULL_SCAN_SHARE` of the pairs."""
    bounds = clusters.partition.bounds(blocks.queries)
    order, starts = clusters.order, clusters.starts
    sizes = np.diff(starts)
    first = _nearest(bounds, sizes, blocks.k)
    for cluster, qs in _by_cluster(first):
        blocks.score(qs, order[starts[cluster] : starts[cluster + 1]])
    need = bounds >= blocks.kth()[:, np.newaxis]
    if blocks.no_entry is not None:
        lowest = blocks.floors.copy()
        lowest[blocks.no_entry] = np.inf
        cluster_floor = np.full(len(sizes), np.inf)
        np.minimum.at(cluster_floor, clusters.of_row, lowest)
        need |= bounds > cluster_floor[np.newaxis, :]
    need &= ~first
    pairs = len(blocks.queries) * len(blocks.matrix)
    if (need * sizes[np.newaxis, :]).sum() > FULL_SCAN_SHARE * pairs:
        return False
    for cluster, qs in _by_cluster(need):
        blocks.score(qs, order[starts[cluster] : starts[cluster + 1]])
    return True


def _nearest(bounds: npt.NDArray[np.float64], sizes: Ints, k: int) -> npt.NDArray[np.bool_]:
    """Per query, its clusters by bound, best first, until they hold more than k rows."""
    ranked = np.argsort(-bounds, axis=1)
    held = np.cumsum(sizes[ranked], axis=1)
    # clusters up to and including the first one where the rows held pass k
    count = np.minimum((held <= k).sum(axis=1) + 1, bounds.shape[1])
    first = np.zeros(bounds.shape, dtype=bool)
    take = np.arange(bounds.shape[1])[np.newaxis, :] < count[:, np.newaxis]
    np.put_along_axis(first, ranked, take, axis=1)
    return first


def _by_cluster(need: npt.NDArray[np.bool_]) -> Iterator[tuple[int, Ints]]:
    for cluster in np.flatnonzero(need.any(axis=0)).tolist():
        yield cluster, np.flatnonzero(need[:, cluster])


def _product(queries: Vector, block: Vector) -> Vector:
    """``queries @ block.T``. OpenBLAS (numpy's) takes several times torch's time for a few
    queries (the batches of a quiet load); for one query (most of a large catalogue's cluster
    blocks) torch's call costs more than the product (bench/README.md)."""
    if len(queries) == 1:
        return queries @ block.T
    return (torch.from_numpy(queries) @ torch.from_numpy(block).T).numpy()


class _Blocks:
    """Scores blocks of (queries x rows) and keeps what each query found."""

    def __init__(
        self,
        matrix: Vector,
        floors: npt.NDArray[np.float64],
        queries: Vector,
        own: Ints,
        k: int,
        no_entry: Ints | None,
        hidden: npt.NDArray[np.bool_] | None = None,
    ) -> None:
        self.matrix = matrix
        self.hidden = hidden
        self.floors = floors
        self.queries = queries
        self.own = own
        self.k = k
        self.no_entry = None
        if no_entry is not None:
            self.no_entry = np.zeros(len(matrix), dtype=bool)
            self.no_entry[no_entry] = True
        self.entries: list[tuple[int, int, float]] = []
        self.cand_q: list[Ints] = []
        self.cand_rows: list[Ints] = []
        self.cand_scores: list[Vector] = []
        self.scored = 0

    def score(self, qs: Ints, rows: Ints | None) -> None:
        """Score queries ``qs`` against ``rows`` (ascending; None: every row)."""
        if rows is not None and not len(rows):
            return
        block = self.matrix if rows is None else self.matrix[rows]
        scores = _product(self.queries[qs], block)
        self.scored += scores.size
        own = self.own[qs]
        if rows is None:
            at, cols = np.flatnonzero(own >= 0), own[own >= 0]
        else:
            pos = np.minimum(np.searchsorted(rows, own), len(rows) - 1)
            at = np.flatnonzero(rows[pos] == own)
            cols = pos[at]
        scores[at, cols] = -np.inf  # never its own neighbour
        if self.no_entry is not None:
            floors = self.floors if rows is None else self.floors[rows]
            enters = scores > floors[np.newaxis, :]
            enters[:, self.no_entry if rows is None else self.no_entry[rows]] = False
            hit_q, hit_col = np.nonzero(enters)
            hit_rows = hit_col if rows is None else rows[hit_col]
            self.entries.extend(
                zip(
                    qs[hit_q].tolist(),
                    hit_rows.tolist(),
                    scores[hit_q, hit_col].tolist(),
                    strict=True,
                )
            )
        if self.hidden is not None:
            scores[:, self.hidden if rows is None else self.hidden[rows]] = -np.inf
        size = min(self.k, scores.shape[1])
        if size <= 0:
            return
        # torch.topk: many times faster than numpy's argpartition on a batch's scores
        # (bench/README.md)
        top = torch.topk(torch.from_numpy(scores), size, dim=1, sorted=False)
        cols = top.indices.numpy()
        self.cand_q.append(np.repeat(qs, size))
        self.cand_rows.append((cols if rows is None else rows[cols]).ravel())
        self.cand_scores.append(top.values.numpy().ravel())

    def _ranked(self) -> tuple[Ints, Ints, Vector]:
        """Candidates found so far, by query, best first (a query's own row left out)."""
        if not self.cand_q:
            empty = np.zeros(0, dtype=np.intp)
            return empty, empty, np.zeros(0, dtype=np.float32)
        q = np.concatenate(self.cand_q)
        rows = np.concatenate(self.cand_rows)
        scores = np.concatenate(self.cand_scores)
        keep = scores > -np.inf
        q, rows, scores = q[keep], rows[keep], scores[keep]
        order = np.lexsort((-scores, q))
        return q[order], rows[order], scores[order]

    def kth(self) -> npt.NDArray[np.float64]:
        """Each query's k-th best score so far (-inf while it has fewer than k)."""
        q, _, scores = self._ranked()
        out = np.full(len(self.queries), -np.inf)
        starts = np.searchsorted(q, np.arange(len(self.queries)))
        counts = np.bincount(q, minlength=len(self.queries))
        full = np.flatnonzero(counts >= self.k)
        out[full] = scores[starts[full] + self.k - 1]
        return out

    def found(self) -> Found:
        q, rows, scores = self._ranked()
        bounds = np.searchsorted(q, np.arange(len(self.queries) + 1))
        top_rows, top_scores = [], []
        for query in range(len(self.queries)):
            start = bounds[query]
            end = min(bounds[query + 1], start + self.k)
            top_rows.append(rows[start:end])
            top_scores.append(scores[start:end])
        return Found(top_rows, top_scores, self.entries, self.scored)
