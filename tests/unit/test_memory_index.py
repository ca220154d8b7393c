"""MemoryIndex: the in-memory copy of the items collection (rows, floors, swap-remove)."""

from __future__ import annotations

import numpy as np
import pytest

from stream.catalog.index import NO_FLOOR, MemoryIndex


def vec(*values: float) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def test_put_stores_unit_vectors_and_new_keys_have_no_floor() -> None:
    index = MemoryIndex(2)
    index.put({"a": vec(3, 4), "b": vec(0, 2)})
    assert len(index) == 2
    assert index.vectors(["a"])["a"] == pytest.approx([0.6, 0.8])
    assert list(index.floors) == [NO_FLOOR, NO_FLOOR]


def test_replacing_a_vector_keeps_its_floor() -> None:
    """As in the store, where an upsert keeps the recorded list: a changed item keeps its floor."""
    index = MemoryIndex(2)
    index.put({"a": vec(1, 0)})
    index.set_floors({"a": 0.4, "unknown": 0.9})
    index.put({"a": vec(0, 1)})
    assert index.floors[index.rows["a"]] == pytest.approx(0.4)
    assert index.vectors(["a"])["a"] == pytest.approx([0, 1])


def test_remove_moves_the_last_row_into_the_gap() -> None:
    index = MemoryIndex(2)
    index.put({"a": vec(1, 0), "b": vec(0, 1), "c": vec(1, 1)})
    index.set_floors({"c": 0.3})
    index.remove(["a", "missing"])
    assert sorted(index.keys) == ["b", "c"]
    assert index.keys[index.rows["c"]] == "c"
    assert index.floors[index.rows["c"]] == pytest.approx(0.3)
    assert index.vectors(["c"])["c"] == pytest.approx([2**-0.5, 2**-0.5])
    assert "a" not in index.vectors(["a"])


def test_grows_past_its_first_capacity_and_scores_every_row() -> None:
    """3,000 rows (the first allocation holds 1,024); scores equal a plain matrix product,
    whatever the chunking."""
    rng = np.random.default_rng(1)
    m = rng.normal(size=(3_000, 8)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    index = MemoryIndex(8)
    index.put({f"k{i}": m[i] for i in range(3_000)})
    queries = m[:50]
    got = np.vstack([scores for _, scores in index.scores(queries)])
    assert got.shape == (50, 3_000)
    assert np.allclose(got, queries @ m.T, atol=1e-6)
