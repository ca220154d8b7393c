"""Hybrid vectors kept as a dense and a Qdrant sparse vector, on both adapters: what the engine
holds, whole vectors read back, and exact fused search against a numpy brute force."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import qdrant_edge as qe
from kit import store_adapter

from encoders.lexical import lexical_vectors
from stream.store import DimensionMismatch, SearchQuery, StoredPoint, VectorStore, Where
from stream.store.base import point_id
from stream.store.edge import EdgeStore
from stream.store.hybrid import LEXICAL
from stream.store.server import ServerStore

DENSE, LEX = 12, 256
DIM = DENSE + LEX
WEIGHT = 0.5
_VOCABULARY = "red blue black steel cotton shirt lamp mug chair desk usb cable 64gb 128gb pro mini"
_WORDS = _VOCABULARY.split()


def _hybrid(rng: np.random.Generator, n: int) -> tuple[list[str], npt.NDArray[np.float32]]:
    """``n`` product-like texts and their hybrid vectors (a random dense part, the texts'
    character n-grams as the lexical part), as the hybrid encoder lays them out."""
    texts = [" ".join(rng.choice(_WORDS, size=rng.integers(2, 5))) for _ in range(n)]
    dense = rng.normal(size=(n, DENSE)).astype(np.float32)
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    lexical = lexical_vectors(texts, LEX)
    whole = np.hstack([np.sqrt(1 - WEIGHT) * dense, np.sqrt(WEIGHT) * lexical])
    return texts, whole.astype(np.float32)


@pytest.fixture(params=["edge", "server-local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    s = store_adapter(request.param, tmp_path)
    s.ensure_collection("items", DIM, None, lexical=LEX)
    yield s
    s.close()


def _points(vectors: npt.NDArray[np.float32]) -> list[StoredPoint]:
    return [
        StoredPoint(f"sku-{i}", {"n": i, "in_stock": i % 3 != 0}, vectors[i])
        for i in range(len(vectors))
    ]


def _engine_sparse(store: VectorStore, key: str) -> tuple[list[float], list[int], list[float]]:
    """The point's dense part and sparse vector as the engine itself holds them."""
    if isinstance(store, EdgeStore):
        [record] = store._shard("items").retrieve([point_id(key)], False, True)
        named = record.vector
        assert isinstance(named, dict)
        sparse = named[LEXICAL]
        assert isinstance(sparse, qe.SparseVector)
        return list(named["text"]), list(sparse.indices), list(sparse.values)  # type: ignore[arg-type]
    assert isinstance(store, ServerStore)
    [rec] = store.client.retrieve("items", [point_id(key)], with_vectors=True)
    assert isinstance(rec.vector, dict)
    sparse = rec.vector[LEXICAL]
    return list(rec.vector["text"]), list(sparse.indices), list(sparse.values)  # type: ignore[union-attr, arg-type]


def test_the_engine_holds_the_lexical_part_as_a_sparse_vector(store: VectorStore) -> None:
    _, vectors = _hybrid(np.random.default_rng(1), 20)
    store.upsert("items", _points(vectors))
    assert store.sparse_width("items") == LEX
    dense, indices, values = _engine_sparse(store, "sku-3")
    assert len(dense) == DENSE
    lexical = vectors[3, DENSE:]
    assert sorted(indices) == np.flatnonzero(lexical).tolist()  # only the non-zero numbers
    assert 0 < len(indices) < LEX // 2
    got = dict(zip(indices, values, strict=True))
    np.testing.assert_allclose(
        [got[i] for i in np.flatnonzero(lexical)], lexical[lexical != 0], atol=1e-6
    )
    np.testing.assert_allclose(dense, vectors[3, :DENSE], atol=1e-6)


def test_whole_vectors_come_back_from_retrieve_scroll_and_update(store: VectorStore) -> None:
    _, vectors = _hybrid(np.random.default_rng(2), 30)
    store.upsert("items", _points(2.5 * vectors))  # scaled to unit length, as cosine would
    got = store.retrieve("items", ["sku-0", "sku-7"], with_vectors=True)
    np.testing.assert_allclose(got["sku-7"].vector, vectors[7], atol=1e-6)  # type: ignore[arg-type]
    scrolled = {p.key: p.vector for p in store.scroll("items", with_vectors=True)}
    assert len(scrolled) == 30
    np.testing.assert_allclose(scrolled["sku-29"], vectors[29], atol=1e-6)  # type: ignore[arg-type]
    store.update_vectors("items", {"sku-7": vectors[8]})
    again = store.retrieve("items", ["sku-7"], with_vectors=True)["sku-7"]
    np.testing.assert_allclose(again.vector, vectors[8], atol=1e-6)  # type: ignore[arg-type]
    assert again.payload["n"] == 7


@pytest.mark.parametrize("limit", [1, 5, 20])
def test_fused_search_is_the_exact_cosine_top_k(store: VectorStore, limit: int) -> None:
    """Every query's hits are the brute-force top k of the whole vectors' cosine (the fused
    score), filtered or not: most need more than the first round's two rankings."""
    rng = np.random.default_rng(3)
    _, vectors = _hybrid(rng, 400)
    store.upsert("items", _points(vectors))
    _, queries = _hybrid(rng, 40)
    in_stock = np.array([i % 3 != 0 for i in range(len(vectors))])
    wheres = [Where(), Where(flag=("in_stock", True))]
    asked = [(w, q) for w in wheres for q in range(len(queries))]
    answers = store.search("items", [SearchQuery(queries[q], limit, w, True) for w, q in asked])
    scores = queries @ vectors.T
    for (where, q), hits in zip(asked, answers, strict=True):
        allowed = in_stock if where.flag else np.ones(len(vectors), dtype=bool)
        expected = sorted(np.flatnonzero(allowed), key=lambda i: -scores[q, i])[:limit]
        assert [h.key for h in hits] == [f"sku-{i}" for i in expected]
        np.testing.assert_allclose([h.score for h in hits], scores[q, expected], atol=1e-5)


def test_a_filter_with_fewer_matches_than_the_limit_gives_them_all(store: VectorStore) -> None:
    _, vectors = _hybrid(np.random.default_rng(4), 50)
    store.upsert("items", _points(vectors))
    keep = {f"sku-{i}" for i in range(50) if i not in (4, 9)}
    [hits] = store.search(
        "items", [SearchQuery(vectors[4], 10, Where(exclude_keys=frozenset(keep)))]
    )
    assert sorted(h.key for h in hits) == ["sku-4", "sku-9"]
    assert hits[0].key == "sku-4" and hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_an_embedded_store_keeps_its_layout_across_a_reopen(tmp_path: Path) -> None:
    _, vectors = _hybrid(np.random.default_rng(5), 40)
    first = EdgeStore(tmp_path / "s")
    first.ensure_collection("items", DIM, None, lexical=LEX)
    first.upsert("items", _points(vectors))
    first.close()
    store = EdgeStore(tmp_path / "s")
    with pytest.raises(DimensionMismatch, match="hybrid"):
        store.ensure_collection("items", DENSE, None)  # the model's vectors alone: refused
    store.ensure_collection("items", DIM, None, lexical=LEX)
    [hits] = store.search("items", [SearchQuery(vectors[11], 3, exact=True)])
    assert hits[0].key == "sku-11"
    store.close()


@pytest.mark.parametrize("kind", ["edge", "server-local"])
def test_a_collection_made_with_one_dense_vector_is_used_as_it_is(
    tmp_path: Path, kind: str
) -> None:
    """A store made before sparse vectors (the whole hybrid vector dense, cosine) keeps
    working when opened with the lexical width."""
    _, vectors = _hybrid(np.random.default_rng(6), 40)

    def make() -> VectorStore:
        return store_adapter(kind, tmp_path)

    old = make()
    old.ensure_collection("items", DIM)
    old.upsert("items", _points(vectors))
    old.close()
    store = make()
    store.ensure_collection("items", DIM, None, lexical=LEX)
    assert store.sparse_width("items") == 0  # as it was made (recstream migrate moves it)
    [hits] = store.search("items", [SearchQuery(vectors[2], 4, exact=True)])
    expected = np.argsort(-(vectors @ vectors[2]), kind="stable")[:4]
    assert [h.key for h in hits] == [f"sku-{i}" for i in expected]
    got = store.retrieve("items", ["sku-2"], with_vectors=True)["sku-2"].vector
    np.testing.assert_allclose(got, vectors[2], atol=1e-6)  # type: ignore[arg-type]
    store.close()


def test_equal_scores_are_ordered_by_key_and_a_zero_limit_reads_nothing(
    store: VectorStore,
) -> None:
    """Items with the same text and embedding tie: the lowest keys come first, whatever the
    engine's order or how each candidate was scored."""
    _, vectors = _hybrid(np.random.default_rng(7), 60)
    twins = [StoredPoint(f"dup-{i:03d}", {}, vectors[0]) for i in range(40)]
    store.upsert("items", [*_points(vectors[1:]), *twins])
    [hits] = store.search("items", [SearchQuery(vectors[0], 5, exact=True)])
    assert [h.key for h in hits] == [f"dup-{i:03d}" for i in range(5)]
    assert store.search("items", [SearchQuery(vectors[0], 0, exact=True)]) == [[]]


@pytest.mark.parametrize("kind", ["edge", "server-local"])
def test_a_store_read_with_a_narrower_lexical_width_is_refused(tmp_path: Path, kind: str) -> None:
    _, vectors = _hybrid(np.random.default_rng(8), 20)

    def make() -> VectorStore:
        return store_adapter(kind, tmp_path)

    first = make()
    first.ensure_collection("items", DIM, None, lexical=LEX)
    first.upsert("items", _points(vectors))
    first.close()
    store = make()
    store.ensure_collection("items", DENSE + 16, None, lexical=16)  # the dense part fits
    with pytest.raises(DimensionMismatch, match="lexical width"):
        store.retrieve("items", [f"sku-{i}" for i in range(20)], with_vectors=True)
    store.close()
