"""Near-exact top k for many spread queries at once (shoppers' profiles), from a bfloat16 copy.

A profile is a mean of several items, near no cluster, so the clusters that prune the catalog's
searches seldom prune its search (:data:`stream.catalog.index.SKIP_CLUSTERS`), and the exact
screen (:class:`stream.catalog.search.Screen`) scores again too many pairs: a profile's k
nearest rows lie in a dense band of scores, and most of the band is within the rounding's bound
of the k-th best (bench/README.md). Candidates for a ranking need not be exact at their margin,
so this search takes every query's best ``k * (1 + EXTRA)`` rows by their bfloat16 scores,
scores those again from the float32 rows, and keeps the best k: a row is missed only when its
rounded score fell below that many others while its exact one was among the k best (every
rounded score is within :func:`stream.catalog.search.screen_slack` of the exact cosine, about
0.016 for unit vectors). On 100,000 clustered vectors of 384 dimensions and 256 profiles
(means of 8 of them), it found every one of the exact top 100 in 57-59 ms, where the exact
search took 127-138 ms (bench/README.md).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import torch

from stream.catalog.partition import Ints
from stream.store.base import Vector

EXTRA = 0.5
"""Rows scored again in float32 beyond k, as a share of k."""
_CHUNK_CELLS = 16_000_000
"""Rough scores computed at once (32 MB of bfloat16): queries are split to stay under."""
_EXACT_CELLS = 4_000_000
"""Numbers of gathered rows scored exactly at once (16 MB of float32)."""
BLOCKS = (64, 8)
"""The column blocks :func:`top_columns` narrows a row to, in turn."""


def rough_top(
    matrix: Vector,
    rough: torch.Tensor,
    queries: Vector,
    own: Ints,
    k: int,
    hidden: npt.NDArray[np.bool_] | None = None,
) -> tuple[list[Ints], list[Vector]]:
    """Each query's k nearest rows of ``matrix`` (unit rows; ``rough``: the same in bfloat16),
    best first, with their exact scores; ``own``: each query's own row or -1, never in its
    top k; ``hidden`` rows are in no top k."""
    rows = len(matrix)
    wide = min(rows, k + math.ceil(k * EXTRA))
    tops: list[Ints] = []
    scores: list[Vector] = []
    if wide <= 0:
        empty = np.zeros(0, dtype=np.intp)
        return [empty] * len(queries), [np.zeros(0, dtype=np.float32)] * len(queries)
    banned = None if hidden is None or not hidden.any() else torch.from_numpy(hidden)
    step = max(1, _CHUNK_CELLS // rows)
    for start in range(0, len(queries), step):
        block = queries[start : start + step]
        # the rows times the queries, read as its transpose: half the time of the queries
        # times the rows (oneDNN, bfloat16, one thread); top_columns reads either layout
        product = (rough @ torch.from_numpy(block).bfloat16().T).T
        if banned is not None:
            product[:, banned] = -torch.inf
        candidates = top_columns(product, wide).numpy()
        exact = _exact(matrix, block, candidates)
        out = candidates == own[start : start + step, np.newaxis]
        if hidden is not None:
            out |= hidden[candidates]
        exact[out] = -np.inf
        # ties by row, whatever order the candidates came in
        order = np.lexsort((candidates, -exact), axis=-1)[:, :k]
        best = np.take_along_axis(candidates, order, axis=1)
        best_scores = np.take_along_axis(exact, order, axis=1)
        for q in range(len(block)):
            kept = best_scores[q] > -np.inf
            tops.append(best[q][kept].astype(np.intp))
            scores.append(best_scores[q][kept])
    return tops, scores


def top_columns(scores: torch.Tensor, wide: int) -> torch.Tensor:
    """Each row's ``wide`` largest scores' columns (in no order): what ``torch.topk`` gives,
    from fewer columns. The columns are cut into blocks of :data:`BLOCKS` (64, then 8 of the
    columns kept); the ``wide`` blocks with the largest maxima hold a top ``wide`` (each of
    the ``wide`` best scores lies in a block whose maximum is at least the ``wide``-th best,
    and ties leave as many equal scores among the kept blocks), so the selection reads the
    scores once for the maxima, then ~10% of them (150 x 64 of 100,000), then ~1%. A row of
    fewer than 4 x ``wide`` blocks is taken whole; the columns past the last whole block are
    always kept.

    bfloat16 scores are compared as their bits read as 16-bit integers, which order every
    score from +0 up as the numbers do (torch's bfloat16 maxima cost ~5x the integers'); where
    any row's ``wide`` largest are not all >= +0, the floats decide for the whole batch.
    Scores are finite or -inf (unit rows): a NaN would read as an integer below +0."""
    if scores.dtype == torch.bfloat16:
        columns = _narrowed(scores.view(torch.int16), wide, bits=True)
        if columns is not None:
            return columns
    columns = _narrowed(scores, wide, bits=False)
    assert columns is not None
    return columns


def _narrowed(values: torch.Tensor, wide: int, *, bits: bool) -> torch.Tensor | None:
    """:func:`top_columns` on ``values``; with ``bits`` (bfloat16 read as integers) None where
    a row's ``wide`` largest are not all >= +0, whose integers order backwards. The blocks need
    no such check: one whose maximum is < +0 holds nothing but such scores, and every block
    holding one >= +0 ranks above it, so the blocks kept hold every score >= +0 whenever they
    would be misordered."""
    rows = values.shape[0]
    here = torch.arange(rows).unsqueeze(1)
    narrowed: list[tuple[torch.Tensor, int, int]] = []
    for block in BLOCKS:
        width = values.shape[1]
        whole = width // block
        if whole < 4 * wide:
            continue
        if values.stride(1) == 1:
            blocks = values[:, : whole * block].reshape(rows, whole, block)
            maxima = blocks.amax(dim=2)
        else:  # a row per column (a product of the rows with the queries): max down the rows
            by_row = values.T[: whole * block].reshape(whole, block, rows)
            blocks, maxima = by_row.permute(2, 0, 1), by_row.amax(dim=1).T
        best = torch.topk(maxima, wide, dim=1, sorted=False).indices
        kept = blocks[here, best].reshape(rows, wide * block)
        values = (
            torch.cat([kept, values[:, whole * block :]], dim=1) if width > whole * block else kept
        )
        narrowed.append((best, block, whole))
    top = torch.topk(values, wide, dim=1, sorted=False)
    if bits and bool((top.values < 0).any()):
        return None
    columns = top.indices
    for chosen, block, whole in reversed(narrowed):
        # a column of the narrowed scores: one of the kept blocks, or one past the whole blocks
        inside = columns < wide * block
        start = torch.gather(chosen, 1, torch.clamp(columns // block, max=wide - 1)) * block
        columns = torch.where(
            inside, start + columns % block, columns - wide * block + whole * block
        )
    return columns


def _exact(matrix: Vector, queries: Vector, candidates: Ints) -> Vector:
    """Each query's float32 scores with its candidate rows: the rows gathered and scored by
    one stacked product per few dozen queries. A product per query would cost a third alone,
    but lets go of the interpreter's lock once per query: beside a thread running Python (the
    batch's other work, the item-statistics consumer) each takes it back only after a switch
    interval (5 ms), which made 256 queries' products take over a second."""
    out = np.empty(candidates.shape, dtype=np.float32)
    step = max(1, _EXACT_CELLS // max(1, candidates.shape[1] * matrix.shape[1]))
    for start in range(0, len(queries), step):
        rows = matrix[candidates[start : start + step]]
        out[start : start + step] = np.matmul(rows, queries[start : start + step, :, np.newaxis])[
            :, :, 0
        ]
    return out
