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
cheaper, and is what runs. On product names clusters seldom prune (a list's floor is far below
what a cluster's bound allows), so the full product is what most catalogues run. Where the full
product would be screened (below), it is cheaper still, and the choice weighs what each costs
(:func:`_cheaper_in_full`).

With a :class:`Screen` (a bfloat16 copy of the rows, on CPUs that multiply bfloat16 natively),
the full product is first taken in bfloat16, in about 0.6x the time; every score it gives is
within :attr:`Screen.slack` of the exact one, so only the pairs that could be in a top k or
enter a list by that margin are scored again from the float32 rows, and only those exact
scores are kept: the answers are the float32 search's. Cluster blocks (rows gathered first)
stay in float32: there the screen measured no faster (bench/README.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch

from stream.catalog.partition import Ints, Partition
from stream.catalog.rough import top_columns
from stream.store.base import Vector

_CHUNK_CELLS = 16_000_000
"""Scores computed at once in a full scan (64 MB of float32): queries are split to stay under."""
FULL_SCAN_SHARE = 0.25
"""Scan everything when the clusters that can matter hold more of the (query, row) pairs than
this: cluster by cluster, each pair costs several times what it does in one product
(bench/README.md)."""
# What the rest of a clustered search and a screened full scan cost, in units of one
# (query, row) pair of the screened scan (its bfloat16 product and second pass, ~10 ns on one
# core of an AMX machine at 256 queries). Measured there, on one torch thread as the catalog
# consumer runs, 30,000 and 100,000 items of 1,408 numbers, 2 to 256 queries (bench/README.md):
# a cluster block's pair ~8 (~80 ns, float32 and gathered), each block ~9,000 (~90 us of calls:
# product, own cells, floors, top k), each row of a full scan ~21 besides its pairs (~210 ns:
# reading it, whatever the queries).
_CLUSTER_PAIR = 8
_CLUSTER_BLOCK = 9_000
_FULL_ROW = 21


@dataclass(frozen=True)
class Clusters:
    """An index's clusters as a search reads them."""

    partition: Partition
    of_row: npt.NDArray[np.int16]
    order: Ints
    """Rows by cluster (:func:`stream.catalog.partition.members`): cluster c's are
    ``order[starts[c]:starts[c + 1]]``, ascending."""
    starts: Ints


@dataclass(frozen=True)
class Screen:
    """A bfloat16 copy of the index's rows, to score blocks roughly before exactly."""

    rows: torch.Tensor
    """The rows (unit float32 vectors) rounded to bfloat16."""
    slack: float
    """The most a rough score can differ from the exact cosine: :func:`screen_slack`."""


def screen_slack(dim: int) -> float:
    """Bound on ``|q . x - bf16(bf16(q) . bf16(x))|`` for unit float32 vectors of ``dim``
    numbers: rounding to bfloat16 (8 significant bits) moves each number by at most 2^-8 of
    itself, so each vector by at most e = 2^-8 of its length, and the product of the rounded
    vectors by at most 2e + e^2 (Cauchy-Schwarz); the float32 sums add ``dim`` roundings of
    2^-24 (doubled), and rounding the product (below 2) to bfloat16 at most 2^-7."""
    e = 2.0**-8
    return 2 * e + e * e + 2 * dim * 2.0**-24 + 2.0**-7


_MIN_RUN = 32
"""Runs of consecutive rows shorter than this are gathered with the rest of a block."""

SCREEN_MIN_CELLS = 16_384
"""Full products smaller than this (queries x rows) are taken in float32 at once: the
screen's second pass costs more than it saves there. So is one query's: numpy's float32
product of one vector with the matrix beat torch's bfloat16 one; from 4 queries on, bfloat16
took a third to a half of float32's time (bench/README.md)."""


@dataclass
class Found:
    """Per query: its top k (rows and scores, best first) and the rows whose list it enters."""

    top_rows: list[Ints]
    top_scores: list[Vector]
    entries: list[tuple[int, int, float]] = field(default_factory=list)
    """(query, row, score)"""
    scored_rows: int = 0
    """Scores computed, summed over queries: how much of the catalogue the search read."""
    clustered: bool | None = None
    """Whether the clusters answered (False: they were tried, and the full product ran after
    their first round; None: not tried)."""


def search(
    matrix: Vector,
    floors: npt.NDArray[np.float64],
    queries: Vector,
    own: Ints,
    k: int,
    no_entry: Ints | None,
    clusters: Clusters | None = None,
    hidden: npt.NDArray[np.bool_] | None = None,
    screen: Screen | None = None,
) -> Found:
    """Search ``matrix`` (unit rows) for ``queries`` (unit rows).

    ``own``: each query's own row (-1: none), never its neighbour. ``no_entry``: rows never
    reported as entered (None: entries not wanted). ``clusters``: the index's, None for a full
    scan. ``hidden``: rows never in a top k (their own lists are still entered). ``screen``:
    the rows in bfloat16, to score roughly first (None: float32 only)."""
    if clusters is not None:
        blocks = _Blocks(matrix, floors, queries, own, k, no_entry, hidden)  # blocks of rows
        screened = screen is not None and _screens(len(queries), len(matrix))
        if _pruned(blocks, clusters, screened):
            return blocks.found(clustered=True)
    # a fresh one: the pruned attempt's first round would be scored twice
    blocks = _Blocks(matrix, floors, queries, own, k, no_entry, hidden, screen)
    step = _chunk_queries(len(matrix))
    for start in range(0, len(queries), step):
        blocks.score(np.arange(start, min(start + step, len(queries))), None)
    return blocks.found(clustered=False if clusters is not None else None)


def _pair_products(queries: Vector, matrix: Vector, q: Ints, rows: Ints) -> Vector:
    """``queries[q] . matrix[rows]`` pair by pair, ``q`` ascending: one matrix-vector product
    per query over its rows (one einsum over both gathered, each query copied once per pair,
    took five times as long: bench/README.md)."""
    out = np.empty(len(q), dtype=np.float32)
    cuts = (np.flatnonzero(np.diff(q)) + 1).tolist()
    for start, end in zip([0, *cuts], [*cuts, len(q)], strict=True):
        if end > start:
            out[start:end] = matrix[rows[start:end]] @ queries[q[start]]
    return out


def _screens(queries: int, rows: int) -> bool:
    """Whether a full scan of ``queries`` x ``rows`` goes through a screen (when there is one)."""
    return queries > 1 and queries * rows >= SCREEN_MIN_CELLS


def _cheaper_in_full(pairs: int, blocks: int, queries: int, rows: int, screened: bool) -> bool:
    """Whether a full scan of ``queries`` x ``rows`` costs less than scoring ``pairs`` more
    in ``blocks`` cluster blocks: :data:`FULL_SCAN_SHARE` of the pairs in float32; with the
    screen, by the costs measured (:data:`_CLUSTER_PAIR`)."""
    if not screened:
        return pairs > FULL_SCAN_SHARE * queries * rows
    clustered = _CLUSTER_PAIR * pairs + _CLUSTER_BLOCK * blocks
    reads = -(-queries // _chunk_queries(rows))  # each chunk of queries reads every row
    return clustered > queries * rows + _FULL_ROW * rows * reads


def _chunk_queries(rows: int) -> int:
    """Queries a full scan of ``rows`` rows scores at once (:data:`_CHUNK_CELLS`)."""
    return max(1, _CHUNK_CELLS // max(1, rows))


def _pruned(blocks: _Blocks, clusters: Clusters, screened: bool = False) -> bool:
    """Score ``blocks`` cluster by cluster; False (stopped after the first round) when the
    rest would cost more than a full scan (:func:`_cheaper_in_full`; ``screened``: the full
    scan would go through the screen).

    In the second round a cluster whose bound reaches a query's k-th best so far is scored
    whole for it; one that can only hold lists the query enters (its bound is below that k-th
    best, above the lowest floor among its rows) is scored only at the rows whose floor is below
    the largest bound of the queries that need it: no other row's list can be entered (a
    query's score with any of the cluster's rows is at most its bound). Those are few: one low
    floor (a short list, a new item's) made the whole cluster count before. Such rows score
    below the query's k-th best so far, so no top k is taken among them."""
    bounds = clusters.partition.bounds(blocks.queries)
    order, starts = clusters.order, clusters.starts
    sizes = np.diff(starts)
    first = _nearest(bounds, sizes, blocks.k)
    for cluster, qs in _by_cluster(first):
        blocks.score(qs, order[starts[cluster] : starts[cluster + 1]])
    whole = (bounds >= blocks.kth()[:, np.newaxis]) & ~first
    cost = int((whole * sizes[np.newaxis, :]).sum())
    entering: list[tuple[Ints, Ints]] = []
    if blocks.no_entry is not None:
        lowest = blocks.floors.copy()
        lowest[blocks.no_entry] = np.inf
        cluster_floor = np.full(len(sizes), np.inf)
        np.minimum.at(cluster_floor, clusters.of_row, lowest)
        only_entries = (bounds > cluster_floor[np.newaxis, :]) & ~first & ~whole
        for cluster, qs in _by_cluster(only_entries):
            members = order[starts[cluster] : starts[cluster + 1]]
            rows = members[lowest[members] < bounds[qs, cluster].max()]
            entering.append((qs, rows))
            cost += len(qs) * len(rows)
    count = int(whole.any(axis=0).sum()) + len(entering)
    if _cheaper_in_full(cost, count, len(blocks.queries), len(blocks.matrix), screened):
        return False
    for cluster, qs in _by_cluster(whole):
        blocks.score(qs, order[starts[cluster] : starts[cluster + 1]])
    for qs, rows in entering:
        blocks.score(qs, rows, tops=False)  # below the k-th best: no top k there
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


def _rows_product(queries: Vector, matrix: Vector, rows: Ints | None) -> Vector:
    """``queries @ matrix[rows].T`` (``rows`` ascending; None: every row). The longest run of
    consecutive rows is read in place (a cluster's rows are one run once the index put them in
    cluster order, with a few written since elsewhere); only the rest is gathered."""
    if rows is None:
        return _product(queries, matrix)
    edges = [0, *(np.flatnonzero(np.diff(rows) != 1) + 1).tolist(), len(rows)]
    longest = int(np.argmax(np.diff(edges)))
    start, end = edges[longest], edges[longest + 1]
    if end - start < _MIN_RUN:
        return _product(queries, matrix[rows])
    first = int(rows[start])
    parts = [
        _product(queries, matrix[rows[:start]]) if start else None,
        _product(queries, matrix[first : first + end - start]),
        _product(queries, matrix[rows[end:]]) if end < len(rows) else None,
    ]
    found = [p for p in parts if p is not None]
    return found[0] if len(found) == 1 else np.concatenate(found, axis=1)


def _sparse_nonzero(mask: npt.NDArray[np.bool_]) -> tuple[Ints, Ints]:
    """``np.nonzero`` of a 2-d C-contiguous mask that is nearly all False, in the same order:
    read as 64-bit words, only the words with a True in them are looked into (on a screened
    block of 160 queries x 100,000 rows with 0.05% True, 6.5 ms against 50: bench/README.md;
    the blocks are laid out rows by queries since, the same cells)."""
    flat = np.ascontiguousarray(mask).reshape(-1)
    whole = flat.size - flat.size % 8
    hot = np.flatnonzero(flat[:whole].view(np.uint64))
    if len(hot) * 8 > whole:  # not sparse after all (every 8th cell or more): numpy's own
        return np.nonzero(mask)  # type: ignore[return-value]
    cells = (hot[:, np.newaxis] * 8 + np.arange(8)).reshape(-1)
    cells = np.concatenate([cells[flat[cells]], np.flatnonzero(flat[whole:]) + whole])
    rows, cols = np.divmod(cells, mask.shape[1])
    return rows, cols


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
        screen: Screen | None = None,
    ) -> None:
        self.matrix = matrix
        self.screen = screen
        self._rough_queries = None if screen is None else torch.from_numpy(queries).bfloat16()
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

    def score(self, qs: Ints, rows: Ints | None, tops: bool = True) -> None:
        """Score queries ``qs`` against ``rows`` (ascending; None: every row); without
        ``tops``, for the lists they enter only (no row can be in their top k)."""
        if rows is not None and not len(rows):
            return
        if self.screen is not None and rows is None and _screens(len(qs), len(self.matrix)):
            self._screened(qs)
            return
        scores = _rows_product(self.queries[qs], self.matrix, rows)
        self.scored += scores.size
        scores[self._own_cells(qs, rows)] = -np.inf  # never its own neighbour
        if self.no_entry is not None:
            floors = self.floors if rows is None else self.floors[rows]
            enters = scores > floors[np.newaxis, :]
            enters[:, self.no_entry if rows is None else self.no_entry[rows]] = False
            hit_q, hit_col = np.nonzero(enters)
            hit_rows = hit_col if rows is None else rows[hit_col]
            self._entered(qs[hit_q], hit_rows, scores[hit_q, hit_col])
        if not tops:
            return
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

    def _screened(self, qs: Ints) -> None:
        """:meth:`score` of every row through the screen: rough scores of the whole block,
        exact ones of the pairs within its slack of a row's floor or of a top k (of the rough
        scores), and only those kept.

        The block is laid out a catalogue row by a query (the rows times the queries): oneDNN
        forms it in ~0.65x the time of the queries times the rows at 4-64 queries, which is
        most of a screened scan (bench/README.md); each query's k-th best rough score is read
        from the bfloat16 block by :func:`stream.catalog.rough.top_columns`, which reads that
        layout, where ``torch.topk`` across it took three times as long."""
        assert self.screen is not None and self._rough_queries is not None
        slack = self.screen.slack
        by_row = self.screen.rows @ self._rough_queries[torch.from_numpy(qs)].T
        own_q, own_rows = self._own_cells(qs, None)
        by_row[torch.from_numpy(own_rows), torch.from_numpy(own_q)] = -torch.inf  # never its own
        scores = by_row.float().numpy()
        wanted = np.zeros(scores.shape, dtype=bool)
        enters = top = None
        if self.no_entry is not None:
            enters = scores > (self.floors - slack)[:, np.newaxis]
            enters[self.no_entry] = False
            wanted |= enters
        size = min(self.k, scores.shape[0])
        if size > 0:
            named = by_row
            if self.hidden is not None:
                named = by_row.clone()
                named[torch.from_numpy(self.hidden)] = -torch.inf
            # every row of the exact top k scores within 2 slacks of the rough k-th best
            best = top_columns(named.T, size)
            kth = named.T.gather(1, best).float().amin(dim=1).numpy()
            top = (scores >= (kth - 2 * slack)[np.newaxis, :]) & (scores > -np.inf)
            if self.hidden is not None:
                top[self.hidden] = False
            wanted |= top
        rows, pair_q = _sparse_nonzero(wanted)
        by_query = np.argsort(pair_q, kind="stable")  # a query's rows together, ascending
        rows, pair_q = rows[by_query], pair_q[by_query]
        queries = qs[pair_q]
        exact = _pair_products(self.queries, self.matrix, queries, rows)
        self.scored += scores.size
        if enters is not None:
            hit = enters[rows, pair_q] & (exact > self.floors[rows])
            self._entered(queries[hit], rows[hit], exact[hit])
        if top is not None:
            named_pairs = top[rows, pair_q]
            self.cand_q.append(queries[named_pairs])
            self.cand_rows.append(rows[named_pairs])
            self.cand_scores.append(exact[named_pairs])

    def _own_cells(self, qs: Ints, rows: Ints | None) -> tuple[Ints, Ints]:
        """The cells of a (``qs`` x ``rows``) block that hold a query's own row."""
        own = self.own[qs]
        if rows is None:
            return np.flatnonzero(own >= 0), own[own >= 0]
        pos = np.minimum(np.searchsorted(rows, own), len(rows) - 1)
        at = np.flatnonzero(rows[pos] == own)
        return at, pos[at]

    def _entered(self, queries: Ints, rows: Ints, scores: Vector) -> None:
        self.entries.extend(zip(queries.tolist(), rows.tolist(), scores.tolist(), strict=True))

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

    def found(self, clustered: bool | None = None) -> Found:
        q, rows, scores = self._ranked()
        bounds = np.searchsorted(q, np.arange(len(self.queries) + 1))
        top_rows, top_scores = [], []
        for query in range(len(self.queries)):
            start = bounds[query]
            end = min(bounds[query + 1], start + self.k)
            top_rows.append(rows[start:end])
            top_scores.append(scores[start:end])
        return Found(top_rows, top_scores, self.entries, self.scored, clustered)
