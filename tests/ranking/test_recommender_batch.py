"""The batched Recommender against the per-shopper one: a batch of shoppers computed together gets
the lists each shopper gets alone, on a real store holding items, item statistics and
a trained model (so every component is in play)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from shoppers import THEMES, histories

from encoders import Encoder
from recstream_tools.evaluation.harness import build, item_points
from recstream_tools.evaluation.interactions import Item
from stream.collections import ITEM_STATS, ITEMS
from stream.ranking.blend import COMPONENTS, Weights
from stream.ranking.recommender import Recommender
from stream.settings import Settings
from stream.store.base import Vector
from stream.store.edge import EdgeStore


def _themed(encoder: Encoder, priced: bool) -> tuple[list[Item], dict[str, Vector]]:
    """Ten items per theme, their titles encoded; prices 5 to 11 (or all 5)."""
    ids = [f"{t}-{n}" for t in THEMES for n in range(10)]
    items = [
        Item(k, f"{k.split('-')[0]} item number {k.split('-')[1]}", 5.0 + n % 7 * priced)
        for n, k in enumerate(ids)
    ]
    return items, dict(zip(ids, encoder.encode([i.title for i in items]), strict=True))


def test_a_batch_gets_the_lists_each_shopper_gets_alone(
    make_settings: Callable[..., Settings], encoder: Encoder
) -> None:
    """For 120 shoppers: recommend_many over all of them equals recommend() of each one, item
    for item, score for score, component for component; the learned, collaborative and
    popularity components all score somewhere."""
    settings = make_settings(rank_candidates=30, rank_exclude_purchased_days=1_000.0)
    shoppers = histories(120, seed=9)
    items, vectors = _themed(encoder, priced=True)
    store = EdgeStore(settings.qdrant_path)
    try:
        build(store, item_points(items, vectors, encoder.name), shoppers, settings, 1)
        recommender = Recommender(settings, store)
        together = recommender.recommend_many(shoppers)
        for user, history in shoppers.items():
            alone = recommender.recommend(history)
            got = together[user].ranked
            assert [r.item_id for r in got] == [r.item_id for r in alone.ranked], user
            for g, a in zip(got, alone.ranked, strict=True):
                assert g.score == pytest.approx(a.score, abs=1e-12)
                assert g.components == pytest.approx(a.components, abs=1e-12)
        components = [r.components for rec in together.values() for r in rec.ranked]
        for name in ("semantic", "collaborative", "learned", "popularity", "price"):
            assert any(c[name] > 0 for c in components), name
        recommender.close()
    finally:
        store.close()


def test_an_item_stored_after_the_copy_was_read_is_a_candidate_at_once(
    make_settings: Callable[..., Settings], encoder: Encoder
) -> None:
    """The behaviour consumer's copy of the items' vectors takes in an item stored after it was
    read (and drops a deleted one) before the next batch, not a refresh interval later: a new
    item next to a shopper's profile, with no behaviour at all, is in their next list, and out
    of the one after its deletion."""
    settings = make_settings(rank_candidates=5, rank_index_refresh_s=3_600.0)
    shoppers = histories(40, seed=3)
    items, vectors = _themed(encoder, priced=False)
    store = EdgeStore(settings.qdrant_path)
    try:
        build(store, item_points(items, vectors, encoder.name), shoppers, settings, 1)
        recommender = Recommender(settings, store)
        shopper = shoppers["u000"]
        before = [r.item_id for r in recommender.recommend(shopper).ranked]
        profile = recommender.recommend(shopper).profile
        assert profile is not None
        twin = Item("twin", "twin of the profile", 5.0)
        # the profile is of the model's part of hybrid vectors: the twin's lexical part is 0
        twin_vector = np.zeros(encoder.dim, dtype=np.float32)
        twin_vector[: len(profile)] = profile
        store.upsert(ITEMS, item_points([twin], {"twin": twin_vector}, encoder.name))
        after = [r.item_id for r in recommender.recommend(shopper).ranked]
        assert "twin" in after and "twin" not in before
        store.delete(ITEMS, ["twin"])
        assert "twin" not in [r.item_id for r in recommender.recommend(shopper).ranked]
        recommender.close()
    finally:
        store.close()


def test_unread_popularity_never_changes_the_lists(
    make_settings: Callable[..., Settings], encoder: Encoder
) -> None:
    """The lists leave out reading the popularity of candidates that cannot reach them: for 120
    shoppers, each one's list equals the best n of every candidate with every popularity read
    (the scores the tuner uses), item for item and component for component; and reads were
    left out."""
    settings = make_settings(
        rank_candidates=8, recommendations_n=4, rank_exclude_purchased_days=1_000.0
    )
    shoppers = histories(120, seed=11)
    items, vectors = _themed(encoder, priced=True)
    store = EdgeStore(settings.qdrant_path)
    asked: list[str] = []
    try:
        build(store, item_points(items, vectors, encoder.name), shoppers, settings, 1)
        recommender = Recommender(settings, store)
        every, _ = recommender.score_many(shoppers)
        real = store.retrieve

        def counted(collection, keys, with_vectors=False, fields=None):  # type: ignore[no-untyped-def]
            if collection == ITEM_STATS and fields == ("pop_key",):
                asked.extend(keys)
            return real(collection, keys, with_vectors, fields)

        store.retrieve = counted  # type: ignore[method-assign]
        # one shopper at a time: fewer candidates are known from the batch's own reads
        lists = {user: recommender.recommend(history) for user, history in shoppers.items()}
        recommender.close()
    finally:
        store.close()
    weights = Weights.from_settings(settings)
    for user in shoppers:
        want = every[user].ranked(weights, 4)
        got = lists[user].ranked
        assert [r.item_id for r in got] == [r.item_id for r in want], user
        for g, w in zip(got, want, strict=True):
            assert g.score == pytest.approx(w.score, abs=1e-12)
            assert g.components == pytest.approx(w.components, abs=1e-12)
    unread = {k for sc in every.values() for k in sc.ids} - set(asked)
    assert asked and unread  # some read, some left out


def test_each_sources_best_items_are_candidates(
    make_settings: Callable[..., Settings], encoder: Encoder
) -> None:
    """With few candidates per source (3), each shopper's candidates still hold the items each
    source ranks best: every item whose collaborative, learned or semantic component, when
    every item is a candidate, is above the third largest of that component. (The batch maps
    each source's best columns to rows of one table: a wrong mapping proposes other items.)"""
    few, every = 3, 10_000
    settings = make_settings(rank_candidates=few, rank_exclude_purchased_days=0.0)
    shoppers = histories(120, seed=5)
    items, vectors = _themed(encoder, priced=True)
    store = EdgeStore(settings.qdrant_path)
    try:
        build(store, item_points(items, vectors, encoder.name), shoppers, settings, 1)
        small = Recommender(settings, store)
        large = Recommender(settings.model_copy(update={"rank_candidates": every}), store)
        proposed, _ = small.score_many(shoppers)
        whole, _ = large.score_many(shoppers)
        small.close()
        large.close()
    finally:
        store.close()
    checked = dict.fromkeys(("collaborative", "learned", "semantic"), 0)
    for user, history in shoppers.items():
        last = max(history, key=lambda i: i.at)
        if last.type == "purchase":
            continue  # bought at the shopper's own time: excluded, a source's best may be it
        assert len(whole[user].ids) == len(items)  # every item is a candidate there
        for name in checked:
            values = whole[user].components[:, COMPONENTS.index(name)]
            positive = np.sort(values[values > 0])[::-1]
            if not len(positive):
                continue
            bar = positive[min(few, len(positive)) - 1] + 1e-6
            best = {whole[user].ids[k] for k in np.flatnonzero(values > bar)}
            assert best <= set(proposed[user].ids), (user, name, best - set(proposed[user].ids))
            checked[name] += len(best)
    assert all(checked.values()), checked
