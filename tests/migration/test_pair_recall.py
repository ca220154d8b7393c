"""The held-out pairs check of ``recstream migrate``: twin recall over a real store, against
ranks counted here by a plain loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stream.collections import ITEMS
from stream.errors import Refused
from stream.migration.switch import RECALL_AT, pair_recall, read_pairs
from stream.store import StoredPoint
from stream.store.edge import EdgeStore


def test_pair_recall_counts_the_twins_among_each_items_nearest(tmp_path: Path) -> None:
    """For each pair whose items are stored, the second counts at k when fewer than k other
    items are more similar to the first; pairs naming an absent item are left out."""
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(40, 8)).astype(np.float32)
    keys = [f"i{n}" for n in range(40)]
    store = EdgeStore(str(tmp_path / "store"))
    try:
        store.ensure_collection(ITEMS, 8)
        store.upsert(ITEMS, [StoredPoint(k, {}, v) for k, v in zip(keys, vectors, strict=True)])
        pairs = [(f"i{n}", f"i{(n * 7 + 3) % 40}") for n in range(30)] + [("i1", "gone")]
        got = pair_recall(store, pairs)
    finally:
        store.close()
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    ranks = []
    for a, b in pairs[:30]:
        i, j = keys.index(a), keys.index(b)
        target = float(unit[i] @ unit[j])
        ranks.append(sum(1 for m in range(40) if m not in (i, j) and unit[i] @ unit[m] > target))
    assert got["pairs"] == 30
    for k in RECALL_AT:
        assert got[f"R@{k}"] == pytest.approx(sum(r < k for r in ranks) / 30)
    assert 0 < got["R@10"] < 1  # the check can fail both ways here


def test_a_pairs_file_without_pairs_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text("left,right\n", encoding="utf-8")
    with pytest.raises(Refused, match="no item id pairs"):
        read_pairs(path)
    path.write_text("left,right\na,b\nc,d,extra\n", encoding="utf-8")
    assert read_pairs(path) == [("a", "b"), ("c", "d")]
