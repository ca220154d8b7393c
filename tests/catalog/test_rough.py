"""The near-exact search of many profiles (:mod:`stream.catalog.rough`): what it gives against a
brute-force product in float64, and when the in-memory index uses it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stream.catalog import rough as rough_module
from stream.catalog.index import MemoryIndex
from stream.catalog.lists import NeighbourState
from stream.catalog.rough import rough_top, top_columns
from stream.catalog.search import Found, screen_slack

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


def check_against_brute(
    m: np.ndarray,
    queries: np.ndarray,
    own: np.ndarray,
    hidden: np.ndarray | None,
    tops: list[np.ndarray],
    scores: list[np.ndarray],
) -> float:
    """Every row given carries its exact cosine, best first, never the query's own row or a
    hidden one; a row of the true top k is missed only where its cosine is within two rounding
    bounds of the k-th given. The share of the true top k found."""
    exact = queries.astype(np.float64) @ m.T.astype(np.float64)
    exact[np.flatnonzero(own >= 0), own[own >= 0]] = -np.inf
    if hidden is not None:
        exact[:, hidden] = -np.inf
    bound = 2 * screen_slack(m.shape[1])
    found = 0
    for q in range(len(queries)):
        rows = tops[q]
        assert len(rows) == K and len(set(rows.tolist())) == K
        assert own[q] not in rows and (hidden is None or not hidden[rows].any())
        assert (np.diff(scores[q]) <= 0).all()  # best first
        np.testing.assert_allclose(scores[q], exact[q, rows], atol=1e-5)
        true = np.argsort(-exact[q], kind="stable")[:K]
        assert exact[q, rows].min() >= float(exact[q, true[-1]]) - bound
        missed = np.setdiff1d(true, rows)
        assert (exact[q, missed] <= scores[q][-1] + bound).all()
        found += K - len(missed)
    return found / (K * len(queries))


def test_rough_top_is_the_exact_top_k_but_within_the_rounding_bound_of_its_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its answers against a brute-force product (:func:`check_against_brute`), with twins
    scoring within ~1e-3 of each other: it misses almost none; the same when the queries are
    scored in several blocks."""
    rng = np.random.default_rng(3)
    m = catalogue(rng)
    queries = profiles(rng, m, 60)
    own = np.full(len(queries), -1, dtype=np.intp)
    own[:10] = np.argmax(queries[:10] @ m.T, axis=1)  # its own row would be its best
    hidden = np.zeros(len(m), dtype=bool)
    hidden[rng.integers(0, len(m), 150)] = True
    rough = torch.from_numpy(m).bfloat16()
    tops, scores = rough_top(m, rough, queries, own, K, hidden)
    assert check_against_brute(m, queries, own, hidden, tops, scores) >= 0.99
    monkeypatch.setattr(rough_module, "_CHUNK_CELLS", 7 * len(m))  # blocks of 7 queries
    blocked = rough_top(m, rough, queries, own, K, hidden)
    assert [r.tolist() for r in blocked[0]] == [r.tolist() for r in tops]


def test_an_index_keeping_a_rough_copy_searches_profiles_with_it_from_min_rows() -> None:
    """From ``min_rows`` rows a search is :func:`rough_top`'s over a bfloat16 copy that follows
    every write and remove, and makes no clusters; a profile searched alone finds what it finds
    in a batch; below ``min_rows``, the search is exact."""
    rng = np.random.default_rng(5)
    m = catalogue(rng)
    queries = profiles(rng, m, 12)
    own = np.full(len(queries), -1, dtype=np.intp)
    keys = [f"k{i}" for i in range(len(m))]
    index = MemoryIndex(DIM, K, min_rows=500, background=False, rough=True)
    index.put({key: m[i] for i, key in enumerate(keys)})
    index.remove(keys[::9])  # rows moved into the removed ones' places
    index.put({key: m[(i + 7) % len(m)] for i, key in enumerate(keys[1:60])})  # replaced
    assert index._rough is not None
    assert torch.equal(index._rough[: len(index)], torch.from_numpy(index.matrix).bfloat16())
    found = index.search(queries, own, None)
    assert found.scored_rows == len(queries) * len(index)  # every row, no clusters
    assert index._partition is None and index._rebuild is None
    assert check_against_brute(index.matrix, queries, own, None, *_found(found)) >= 0.99
    alone = [index.search(queries[q : q + 1], own[q : q + 1], None) for q in range(len(queries))]
    assert [a.top_rows[0].tolist() for a in alone] == [r.tolist() for r in found.top_rows]

    small = MemoryIndex(DIM, K, min_rows=10_000, background=False, rough=True)
    small.put({key: m[i] for i, key in enumerate(keys)})
    brute = queries.astype(np.float64) @ small.matrix.T.astype(np.float64)
    got = small.search(queries, own, None)
    assert [r.tolist() for r in got.top_rows] == [
        np.argsort(-row, kind="stable")[:K].tolist() for row in brute
    ]


def _found(found: Found) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return found.top_rows, found.top_scores


def test_an_index_without_records_keeps_no_room_for_lists_and_searches_alike() -> None:
    """The shoppers' copy records no lists: no k columns per row for them, the same answers,
    and a list given to it is refused rather than dropped."""
    rng = np.random.default_rng(9)
    m = catalogue(rng)
    queries = profiles(rng, m, 8)
    own = np.full(len(queries), -1, dtype=np.intp)
    keys = [f"k{i}" for i in range(len(m))]
    indexes = [MemoryIndex(DIM, K, min_rows=500, rough=True, records=r) for r in (True, False)]
    for index in indexes:
        index.put({key: m[i] for i, key in enumerate(keys)})
    kept, bare = indexes
    assert kept._ids.nbytes > 0 and bare._ids.nbytes == 0 and bare._scores.nbytes == 0
    assert [r.tolist() for r in bare.search(queries, own, None).top_rows] == [
        r.tolist() for r in kept.search(queries, own, None).top_rows
    ]
    with pytest.raises(ValueError, match="no recorded lists"):
        bare.set_lists({"k1": NeighbourState(("k2",), (0.5,))})


@example(rows=2, wide=150, width=100_003, ties=1, offset=0.0, by_row=True, seed=7)
@example(rows=2, wide=10, width=3_000, ties=0, offset=-4.0, by_row=False, seed=3)  # all < 0
@example(rows=3, wide=20, width=1_000, ties=2, offset=0.0, by_row=True, seed=5)  # blocks of 8
@given(
    st.integers(1, 5),
    st.integers(1, 40),
    st.integers(1, 3_000),
    st.sampled_from([0, 1, 2]),
    st.sampled_from([0.0, 2.0, -0.5, -4.0]),
    st.booleans(),
    st.integers(0, 2**31),
)
@settings(max_examples=80, deadline=None)
def test_top_columns_hold_the_largest_scores_as_topk_does(
    rows: int, wide: int, width: int, ties: int, offset: float, by_row: bool, seed: int
) -> None:
    """Against ``torch.topk`` on bfloat16 scores with many ties (a few distinct values), -inf
    columns (hidden rows), widths that leave a partial last block, and scores moved so that
    all, some or none of a row's best are below zero (where the scores' bits, read as
    integers, order backwards): the columns are distinct, in range, and their scores are the
    row's ``wide`` largest; the scores laid out a row of the matrix after another, or a column
    (``by_row``: a product of the rows with the queries, transposed)."""
    wide = min(wide, width)
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(rows, width, generator=gen) + offset
    if ties:
        scores = torch.round(scores * (2 if ties == 1 else 8)) / 8
    scores[:, torch.rand(width, generator=gen) < 0.05] = -torch.inf
    scores = scores.bfloat16()
    got = top_columns(scores.T.contiguous().T if by_row else scores, wide)
    want = torch.topk(scores, wide, dim=1, sorted=False).indices
    assert got.shape == (rows, wide)
    for r in range(rows):
        assert len(set(got[r].tolist())) == wide and int(got[r].max()) < width
        assert torch.equal(
            torch.sort(scores[r, got[r]].float()).values,
            torch.sort(scores[r, want[r]].float()).values,
        )


def test_rough_top_breaks_ties_by_row() -> None:
    """Two rows with the same vector tie for a query's best: the lower row is kept, whichever
    order the bfloat16 round hands the candidates over in."""
    rng = np.random.default_rng(11)
    m = rng.normal(size=(5_000, DIM))
    m[4_000] = m[17]
    m = (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)
    rough = torch.from_numpy(m).bfloat16()
    queries = m[[17, 4_000]].copy()
    tops, _ = rough_top(m, rough, queries, np.full(2, -1, dtype=np.intp), 1)
    assert [t.tolist() for t in tops] == [[17], [17]]
