"""The Recommender on a real (embedded) store holding what the consumers left: item statistics
far later than a shopper's events, and a damaged statistics record; and a batch that fails
while its profiles' search runs beside it."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

from stream.collections import ITEM_STATS, ITEMS, ensure_collections
from stream.ranking.candidates import ItemIndex
from stream.ranking.profile import Interaction
from stream.ranking.recommender import Recommender
from stream.ranking.stats import stored_stats
from stream.settings import Settings
from stream.store import StoredPoint, StoreError
from stream.store.edge import EdgeStore

_DIM = 4
LATE = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def _store(settings: Settings, stats: dict[str, dict[str, object]]) -> EdgeStore:
    """Items a..f (a random unit vector each, price 10) and the given item statistics."""
    store = EdgeStore(settings.qdrant_path)
    ensure_collections(store, _DIM)
    rng = np.random.default_rng(3)
    store.upsert(
        ITEMS,
        [
            StoredPoint(k, {"item_id": k, "price": 10.0, "in_stock": True}, v / np.linalg.norm(v))
            for k, v in ((k, rng.normal(size=_DIM).astype(np.float32)) for k in "abcdef")
        ],
    )
    one = np.ones(1, dtype=np.float32)
    store.upsert(ITEM_STATS, [StoredPoint(k, {"item_id": k, **p}, one) for k, p in stats.items()])
    return store


def _co(at: datetime, co: dict[str, float]) -> dict[str, object]:
    return {"pop": 1.0, "co": json.dumps(co), "ref": at.isoformat(), "pop_key": 1.0}


def test_collaborative_shares_of_a_shopper_decades_older_than_the_statistics(
    make_settings: Callable[..., Settings],
) -> None:
    """Statistics last moved in 2026, a shopper whose events are from 1990 and 2000 (with a
    1-hour half-life, factors of 2^228,000 and more): the list is made, and each collaborative
    component is the item's share of the largest as numpy computes it in log space."""
    settings = make_settings(popularity_half_life_hours=1.0, rank_candidates=10)
    times = {"a": LATE, "b": datetime(2026, 11, 22, 9, 0, tzinfo=UTC)}
    stats = {
        "a": _co(times["a"], {"c": 2.0, "d": 1.0}),
        "b": _co(times["b"], {"c": 1.0, "e": 4.0}),
    }
    history = [
        Interaction("e1", "a", "view", datetime(1990, 1, 1, tzinfo=UTC)),
        Interaction("e2", "b", "view", datetime(2000, 1, 1, tzinfo=UTC)),
    ]
    store = _store(settings, stats)
    try:
        recommender = Recommender(settings, store)
        got = {r.item_id: r.components for r in recommender.recommend(history).ranked}
        recommender.close()
    finally:
        store.close()
    ref = max(i.at for i in history)
    # log of each contribution: log w + ln 2 x (half-lives from the shopper's time to the stats')
    logs: dict[str, list[float]] = {}
    for item, stat in stats.items():
        hours = (times[item] - ref).total_seconds() / 3600
        for other, w in json.loads(str(stat["co"])).items():
            logs.setdefault(other, []).append(math.log(w) + math.log(2) * hours / 1.0)
    summed = {k: float(np.logaddexp.reduce(v)) for k, v in logs.items()}
    top = max(summed.values())
    for item in "cde":
        assert got[item]["collaborative"] == pytest.approx(math.exp(summed[item] - top), abs=1e-9)
    assert got["c"]["collaborative"] == 1.0 and got["e"]["collaborative"] > 0


@pytest.mark.parametrize("layout", ["fields", "text"])
def test_damaged_statistics_of_a_recent_item_count_nothing_and_are_logged(
    make_settings: Callable[..., Settings], layout: str
) -> None:
    """A recent item whose stored co-occurrence is not valid JSON does not stop the list: it
    contributes no co-occurrence (a warning names it), the sound item's partners still score.
    Records stored a field each (as before) or as one text (:func:`stored_stats`)."""
    settings = make_settings(rank_candidates=10)
    if layout == "fields":
        stats = {"a": {**_co(LATE, {}), "co": "{not json"}, "b": _co(LATE, {"c": 1.0})}
    else:
        sound = {"pop": 1.0, "co": {"c": 1.0}, "ref": LATE.isoformat(), "pop_key": 1.0}
        stats = {"a": {"stats": "{not json", "pop_key": 1.0}, "b": stored_stats(sound)}
    history = [
        Interaction("e1", "a", "click", LATE),
        Interaction("e2", "b", "click", LATE),
    ]
    store = _store(settings, stats)
    try:
        recommender = Recommender(settings, store)
        with capture_logs() as logs:
            got = {r.item_id: r.components for r in recommender.recommend(history).ranked}
        recommender.close()
    finally:
        store.close()
    assert got["c"]["collaborative"] == 1.0
    damaged = [e for e in logs if e["event"] == "recommend.damaged_stats"]
    assert [(e["item_id"], e["log_level"]) for e in damaged] == [("a", "warning")]


def test_a_failed_batch_waits_for_its_profile_search_and_the_next_one_ranks(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The profiles' search runs beside the statistics' reads: when a read fails, the error
    reaches the caller only after the search has finished (the next batch catches the copy
    up, which must not change under a search), an error of the search itself reaches the
    caller too, and the next batch ranks as a fresh recommender does."""
    settings = make_settings(rank_candidates=10)
    stats = {"a": _co(LATE, {"c": 1.0}), "b": _co(LATE, {"d": 1.0})}
    history = [Interaction("e1", "a", "click", LATE), Interaction("e2", "b", "click", LATE)]
    store = _store(settings, stats)
    searched: list[str] = []
    nearest = ItemIndex.nearest

    def slow_nearest(self: ItemIndex, *args: Any) -> dict[str, list[str]]:
        time.sleep(0.3)
        searched.append("done")
        return nearest(self, *args)

    def failing_nearest(self: ItemIndex, *args: Any) -> dict[str, list[str]]:
        raise RuntimeError("search failed")

    def failing_retrieve(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("stats unreadable")

    try:
        fresh = Recommender(settings, store)
        expected = fresh.recommend(history).ranked
        fresh.close()
        recommender = Recommender(settings, store)
        recommender.recommend(history)  # the copy is read
        with monkeypatch.context() as m:
            m.setattr(ItemIndex, "nearest", slow_nearest)
            m.setattr(store, "retrieve", failing_retrieve)
            with pytest.raises(StoreError, match="stats unreadable"):
                recommender.recommend(history)
            assert searched == ["done"]  # finished before the error was raised
        with monkeypatch.context() as m:
            m.setattr(ItemIndex, "nearest", failing_nearest)
            with pytest.raises(RuntimeError, match="search failed"):
                recommender.recommend(history)
        assert recommender.recommend(history).ranked == expected
        recommender.close()
    finally:
        store.close()
