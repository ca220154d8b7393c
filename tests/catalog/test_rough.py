"""The near-exact search of many profiles (:mod:`stream.catalog.rough`): what it gives against a
brute-force product in float64, and when the in-memory index uses it."""

from __future__ import annotations

import numpy as np
import torch

from stream.catalog.index import MemoryIndex
from stream.catalog.rough import rough_top
from stream.catalog.search import screen_slack

DIM = 64
K = 20


def catalogue(rng: np.random.Generator) -> np.ndarray:
    """Unit rows: 300 of a kind, 8 near-copies of each of the first 40, and 1,000 unrelated."""
    base = rng.normal(size=(300, DIM))
    twins = np.repeat(base[:40], 8, axis=0) + rng.normal(scale=0.1, size=(320, DIM))
    m = np.concatenate([base, twins, rng.normal(size=(1_000, DIM))])
    return (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)


def profiles(rng: np.random.Generator, m: np.ndarray, n: int) -> np.ndarray:
    """Means of 1 to 8 rows each, as shoppers' profiles are."""
    out = np.stack([m[rng.integers(0, len(m), rng.integers(1, 9))].mean(axis=0) for _ in range(n)])
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def test_rough_top_is_the_exact_top_k_but_within_the_rounding_bound_of_its_last() -> None:
    """Every row it gives carries its exact cosine, best first, never the query's own row or a
    hidden one; a row of the true top k is missed only where its cosine is within two rounding
    bounds of the k-th given (a row scored below ``k * 1.5`` others in bfloat16); and here,
    with twins scoring within ~1e-3 of each other, it misses almost none."""
    rng = np.random.default_rng(3)
    m = catalogue(rng)
    queries = profiles(rng, m, 60)
    own = np.full(len(queries), -1, dtype=np.intp)
    exact = queries.astype(np.float64) @ m.T.astype(np.float64)
    own[:10] = np.argmax(exact[:10], axis=1)  # its own row would be its best
    hidden = np.zeros(len(m), dtype=bool)
    hidden[rng.integers(0, len(m), 150)] = True
    exact[np.flatnonzero(own >= 0), own[own >= 0]] = -np.inf
    exact[:, hidden] = -np.inf
    tops, scores = rough_top(m, torch.from_numpy(m).bfloat16(), queries, own, K, hidden)
    bound = 2 * screen_slack(DIM)
    found = 0
    for q in range(len(queries)):
        rows = tops[q]
        assert len(rows) == K and len(set(rows.tolist())) == K
        assert not hidden[rows].any() and own[q] not in rows
        assert (np.diff(scores[q]) <= 0).all()  # best first
        np.testing.assert_allclose(scores[q], exact[q, rows], atol=1e-5)
        true = np.argsort(-exact[q], kind="stable")[:K]
        kth = float(exact[q, true[-1]])
        assert exact[q, rows].min() >= kth - bound
        missed = np.setdiff1d(true, rows)
        assert (exact[q, missed] <= scores[q][-1] + bound).all()
        found += K - len(missed)
    assert found >= 0.99 * K * len(queries)


def test_an_index_keeping_a_rough_copy_searches_profiles_with_it_from_min_rows() -> None:
    """From ``min_rows`` rows a search is :func:`rough_top`'s and makes no clusters, and a
    profile searched alone finds what it finds in a batch; below ``min_rows``, exactly."""
    rng = np.random.default_rng(5)
    m = catalogue(rng)
    queries = profiles(rng, m, 12)
    own = np.full(len(queries), -1, dtype=np.intp)
    keys = [f"k{i}" for i in range(len(m))]
    index = MemoryIndex(DIM, K, min_rows=500, background=False, rough=True)
    index.put({key: m[i] for i, key in enumerate(keys)})
    index.remove(keys[::9])  # rows moved: the rough copy follows
    found = index.search(queries, own, None)
    assert index._rough is not None
    tops, _ = rough_top(index.matrix, index._rough[: len(index)], queries, own, K)
    assert [r.tolist() for r in found.top_rows] == [r.tolist() for r in tops]
    assert index._partition is None and index._rebuild is None  # no clusters made
    alone = [index.search(queries[q : q + 1], own[q : q + 1], None) for q in range(len(queries))]
    assert [a.top_rows[0].tolist() for a in alone] == [r.tolist() for r in tops]
    assert index._partition is None and index._rebuild is None

    small = MemoryIndex(DIM, K, min_rows=10_000, background=False, rough=True)
    small.put({key: m[i] for i, key in enumerate(keys)})
    brute = queries.astype(np.float64) @ small.matrix.T.astype(np.float64)
    got = small.search(queries, own, None)
    assert [r.tolist() for r in got.top_rows] == [
        np.argsort(-row, kind="stable")[:K].tolist() for row in brute
    ]
