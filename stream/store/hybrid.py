"""Hybrid vectors in a store: the model's part as a dense vector, the lexical part as a sparse one.

A hybrid vector (:mod:`encoders.hybrid`) is ``[sqrt(1 - w) * dense, sqrt(w) * lexical]``; its
lexical part is hashed character n-grams, a few hundred non-zero numbers of ``lexical`` (1,024 by
default). A collection made for hybrid vectors keeps the first part as its dense vector (dot
product) and the second as a Qdrant **sparse vector** named :data:`LEXICAL` (the indices and
values of its non-zero numbers): a third of the floats stored per item, and the engine's own
inverted index for the lexical side. The adapters take and give whole vectors: they scale a
vector to unit length and split it on the way in (as a cosine collection scales it) and join
the parts on the way out, so everything above them is unchanged.

The cosine of two whole unit vectors is the sum of the dot products of their parts, so a search
is exact without a whole-vector index (:func:`fused_search`, the threshold algorithm over the
two rankings): the ``n`` best by the dense part and the ``n`` best by the sparse part are read,
every candidate is scored whole, and an item in neither list scores at most the n-th dense score
plus the n-th sparse one (or zero: no shared n-gram); when the k-th best candidate reaches that
bound, the answer is the true top k, else ``n`` grows. A collection made before (one dense
vector of the whole length) is used as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from stream.store.base import (
    DimensionMismatch,
    Hit,
    SearchQuery,
    Vector,
    VectorStore,
    Where,
    as_vector,
)

LEXICAL = "lexical"
"""The sparse vector's name in a hybrid collection."""
GROWTH = 4
"""How much more of each ranking the next round of :func:`fused_search` reads."""
TIE = 1e-6
"""Scores closer than this are a tie, ordered by key (lists publish scores to 6 decimals; a
candidate's score is the engine's sum of its two parts, or a product computed here)."""


@dataclass(frozen=True)
class Split:
    """A whole vector, scaled to unit length, in a hybrid collection's two parts."""

    dense: list[float]
    indices: list[int]
    values: list[float]


def split(vector: Vector | Sequence[float], lexical: int) -> Split:
    """``vector`` (of any length > ``lexical``) scaled to unit length and split: its first
    numbers dense, its last ``lexical`` ones as the indices and values of the non-zero ones."""
    whole = as_vector(vector)
    norm = float(np.linalg.norm(whole))
    if norm > 0:
        whole = whole / np.float32(norm)
    cut = len(whole) - lexical
    tail = whole[cut:]
    at = np.flatnonzero(tail)
    return Split(whole[:cut].tolist(), at.tolist(), tail[at].tolist())


def joined(
    dense: Sequence[float], indices: Sequence[int], values: Sequence[float], lexical: int
) -> Vector:
    """The whole vector of a hybrid collection's point; :class:`DimensionMismatch` when its
    sparse part does not fit ``lexical`` (the store was embedded with another width)."""
    out = np.zeros(len(dense) + lexical, dtype=np.float32)
    out[: len(dense)] = dense
    if len(indices):
        at = np.asarray(indices, dtype=np.intp)
        if at.max() >= lexical:
            raise DimensionMismatch(
                f"the store holds n-gram vectors wider than {lexical}: it was embedded with "
                "another lexical width (RECSTREAM_LEXICAL_DIM)"
            )
        out[len(dense) + at] = values
    return out


Rankings = Callable[[Split, int, Where, bool], tuple[list[Hit], list[Hit]]]
"""The engine's two searches for one query: the best ``n`` by the dense part and the best ``n``
by the sparse part (each best first, filtered by the ``Where``; exact when asked)."""
Wholes = Callable[[list[str]], Mapping[str, Vector]]
"""The engine's whole vectors of stored points by key."""


def whole_vectors(store: VectorStore, collection: str) -> Wholes:
    """What :func:`fused_search` reads candidates with: ``store``'s whole vectors by key."""

    def read(keys: list[str]) -> dict[str, Vector]:
        points = store.retrieve(collection, keys, with_vectors=True, fields=())
        return {k: p.vector for k, p in points.items() if p.vector is not None}

    return read


def fused_search(query: SearchQuery, lexical: int, rankings: Rankings, wholes: Wholes) -> list[Hit]:
    """The ``query.limit`` points of highest cosine with ``query.vector``, best first (scores
    equal to 6 decimals by key), read through the two parts' rankings (see the module's
    notes): a round ends the search when its ``limit``-th candidate beats the bound by more
    than :data:`TIE`, so no unseen point can tie with it."""
    if query.limit <= 0:
        return []
    parts = split(query.vector, lexical)
    whole = joined(parts.dense, parts.indices, parts.values, lexical)
    limit = query.limit
    n = GROWTH * max(limit, 1)  # a scan costs about the same for n as for limit: fewer rounds
    while True:
        dense, sparse = rankings(parts, n, query.where, query.exact)
        payloads = {h.key: h.payload for h in (*dense, *sparse)}
        # a candidate in both rankings has both parts' scores; the others are read whole
        fused = _summed(dense, sparse) if parts.indices else {h.key: h.score for h in dense}
        vectors = wholes([k for k in payloads if k not in fused])
        fused.update((k, float(v @ whole)) for k, v in vectors.items())
        scored = sorted(((s, k) for k, s in fused.items()), key=_order)
        if len(dense) < n:  # every point the filter lets through is a candidate
            break
        sparse_bound = max(sparse[-1].score, 0.0) if len(sparse) >= n and parts.indices else 0.0
        bound = dense[-1].score + sparse_bound
        if len(scored) >= limit and scored[limit - 1][0] > bound + TIE:
            break
        n *= GROWTH
    return [Hit(k, score, payloads[k]) for score, k in scored[:limit]]


def _order(pair: tuple[float, str]) -> tuple[float, str]:
    return -round(pair[0], 6), pair[1]


def _summed(dense: list[Hit], sparse: list[Hit]) -> dict[str, float]:
    """The fused scores of the candidates both rankings hold."""
    by_sparse = {h.key: h.score for h in sparse}
    return {h.key: h.score + by_sparse[h.key] for h in dense if h.key in by_sparse}
