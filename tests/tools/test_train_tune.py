"""``recstream train recommender`` and ``recstream tune`` on a real embedded store holding what the
consumers wrote (items with their vectors, shoppers' histories): the model rows in the store,
the tuned settings in the store and a Recommender that ranks with them, and a refusal when the
history is too short."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from shoppers import THEMES, histories

from encoders import Encoder
from stream import cli
from stream.collections import ITEM_MODEL, ITEMS, USERS, ensure_collections
from stream.ranking.blend import Weights
from stream.ranking.learned import load_tuned, read_rows, train_model
from stream.ranking.profile import Interaction, history_to_payload
from stream.ranking.recommender import Recommender
from stream.settings import Settings
from stream.store import StoredPoint
from stream.store.edge import EdgeStore


def fill(path: str, encoder: Encoder, shoppers: dict[str, list[Interaction]]) -> None:
    store = EdgeStore(path)
    try:
        ensure_collections(store, encoder.dim)
        ids = [f"{t}-{n}" for t in THEMES for n in range(10)]
        vectors = encoder.encode([f"{i.split('-')[0]} item number {i.split('-')[1]}" for i in ids])
        store.upsert(
            ITEMS,
            [
                StoredPoint(k, {"item_id": k, "title": k, "price": 10.0, "in_stock": True}, v)
                for k, v in zip(ids, vectors, strict=True)
            ],
        )
        placeholder = np.zeros(encoder.dim, dtype=np.float32)
        placeholder[0] = 1.0
        store.upsert(
            USERS,
            [
                StoredPoint(u, {"user_id": u, "history": history_to_payload(h)}, placeholder)
                for u, h in shoppers.items()
            ],
        )
    finally:
        store.close()


def test_train_writes_the_model_of_the_stored_histories(
    make_settings: Callable[..., Settings], encoder: Encoder, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every item row in ``item_model`` equals the model trained on the stored histories, and a
    second training with fewer items deletes the rows of items it no longer knows."""
    settings = make_settings()
    shoppers = histories(80)
    fill(settings.qdrant_path, encoder, shoppers)
    args = ["train", "recommender", f"--qdrant-path={settings.qdrant_path}", "--log-level=warning"]
    assert cli.main(args) == 0
    assert "trained ease on" in capsys.readouterr().out
    want = train_model(settings, shoppers).rows
    store = EdgeStore(settings.qdrant_path)
    try:
        ensure_collections(store, encoder.dim)
        got = read_rows(store, sorted(want))
        assert set(got) == set(want)
        for item, row in want.items():
            assert [k for k, _ in got[item]] == [k for k, _ in row]
            assert [w for _, w in got[item]] == pytest.approx([w for _, w in row], rel=1e-9)
        # the toys shoppers leave: their items' rows go
        store.delete(USERS, [u for u, h in shoppers.items() if h[0].item_id.startswith("toys")])
    finally:
        store.close()
    assert cli.main(args) == 0
    store = EdgeStore(settings.qdrant_path)
    try:
        ensure_collections(store, encoder.dim)
        keys = {p.key for p in store.scroll(ITEM_MODEL)}
        assert keys and not any(k.startswith("toys") for k in keys)
    finally:
        store.close()


def test_tune_stores_settings_the_recommender_ranks_with(
    make_settings: Callable[..., Settings], encoder: Encoder, capsys: pytest.CaptureFixture[str]
) -> None:
    """``recstream tune`` prints before/after validation figures, stores the chosen settings, and
    a Recommender on that store ranks with them (unless rank_tuned is off)."""
    settings = make_settings()
    shoppers = histories(400)
    fill(settings.qdrant_path, encoder, shoppers)
    code = cli.main(
        [
            "tune",
            f"--qdrant-path={settings.qdrant_path}",
            "--samples=10",
            "--workers=1",
            "--validation-fraction=0.2",
            "--log-level=warning",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "ndcg@10" in printed and "before" in printed and "after" in printed
    assert "  weights: NDCG@10 " in printed and "  model (learned_l2 " in printed
    store = EdgeStore(settings.qdrant_path)
    try:
        ensure_collections(store, encoder.dim)
        tuned = load_tuned(store)
        assert set(tuned) >= {"rank_weight_learned", "learned_l2", "learned_half_life_hours"}
        assert sum(v for k, v in tuned.items() if k.startswith("rank_weight")) == pytest.approx(
            1.0, abs=1e-3
        )
        recommender = Recommender(settings, store)
        recommender.recommend(shoppers["u000"])
        expected = Settings(**{**settings.model_dump(), **tuned})
        assert recommender.weights == Weights.from_settings(expected)
        untuned = Recommender(settings.model_copy(update={"rank_tuned": False}), store)
        untuned.recommend(shoppers["u000"])
        assert untuned.weights == Weights.from_settings(settings)
        recommender.close()
        untuned.close()
    finally:
        store.close()


def test_tune_refuses_a_history_too_short_to_judge(
    make_settings: Callable[..., Settings], encoder: Encoder, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a handful of shoppers the tuner exits 2 and says why; nothing is stored."""
    settings = make_settings()
    fill(settings.qdrant_path, encoder, histories(6))
    code = cli.main(["tune", f"--qdrant-path={settings.qdrant_path}", "--log-level=warning"])
    assert code == 2
    assert "too little history to tune" in capsys.readouterr().err
    store = EdgeStore(settings.qdrant_path)
    try:
        ensure_collections(store, encoder.dim)
        assert load_tuned(store) == {}
    finally:
        store.close()
