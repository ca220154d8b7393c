"""The learned model as a consumer holds it: the stored rows read into one sparse matrix, every
shopper folded in with one product; equal to summing the rows by hand, and read again when a
new model is stored (not before)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stream.collections import ITEM_MODEL, ensure_collections
from stream.ranking.learned import LoadedModel, write_model
from stream.ranking.model import ItemModel
from stream.store.edge import EdgeStore


def model(seed: int, items: int = 30) -> ItemModel:
    rng = random.Random(seed)
    names = [f"i{n:02d}" for n in range(items)]
    rows = {
        k: [(j, rng.uniform(-0.5, 1.0)) for j in rng.sample(names, 6) if j != k]
        for k in rng.sample(names, items - 5)
    }
    return ItemModel("ease", rows, shoppers=10, items=items, interactions=100)


def by_hand(rows: dict[str, list[tuple[str, float]]], side: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for h, x in side.items():
        for j, w in rows.get(h, []):
            out[j] = out.get(j, 0.0) + x * w
    return out


@pytest.fixture
def store(tmp_path: Path) -> EdgeStore:
    s = EdgeStore(str(tmp_path / "q"))
    ensure_collections(s, 4)
    return s


def test_fold_in_of_every_shopper_equals_summing_the_rows(store: EdgeStore) -> None:
    m = model(1)
    write_model(store, m, datetime(2026, 1, 1, tzinfo=UTC))
    loaded = LoadedModel(store)
    loaded.refresh()
    rng = random.Random(2)
    sides = [
        {f"i{rng.randrange(35):02d}": rng.uniform(0.1, 1.0) for _ in range(rng.randint(0, 6))}
        for _ in range(20)
    ]
    folded = loaded.fold_in(sides)
    assert folded.shape[0] == len(sides)
    for n, side in enumerate(sides):
        row = folded.getrow(n)
        got = {loaded.items[c]: v for c, v in zip(row.indices, row.data, strict=True) if v != 0}
        want = {k: v for k, v in by_hand(m.rows, side).items() if v != 0}
        assert got.keys() == want.keys()
        assert [got[k] for k in sorted(got)] == pytest.approx([want[k] for k in sorted(want)])


def test_a_new_model_is_read_when_stored_and_not_before(store: EdgeStore) -> None:
    first, second = model(1), model(3)
    write_model(store, first, datetime(2026, 1, 1, tzinfo=UTC))
    loaded = LoadedModel(store)
    loaded.refresh()
    side = {next(iter(second.rows)): 1.0}

    def scores() -> dict[str, float]:
        row = loaded.fold_in([side]).getrow(0)
        return {loaded.items[c]: v for c, v in zip(row.indices, row.data, strict=True) if v}

    assert scores() == pytest.approx(by_hand(first.rows, side))
    # rows written without the model's marker (a write under way) are not read yet
    store.delete(ITEM_MODEL, list(first.rows))
    loaded.refresh()
    assert scores() == pytest.approx(by_hand(first.rows, side))
    write_model(store, second, datetime(2026, 1, 2, tzinfo=UTC))
    loaded.refresh()
    assert scores() == pytest.approx({k: v for k, v in by_hand(second.rows, side).items() if v})
