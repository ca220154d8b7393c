"""The tuner: its bulk figures equal the metric functions on the Recommender's own ranking, and
the validation window is cut from the history alone."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from recstream_tools.evaluation.metrics import hit_rate, ndcg, recall
from recstream_tools.evaluation.tune import _prepare, figures, validation_cutoff, validation_split
from stream.ranking.blend import COMPONENTS, Scored, Weights
from stream.ranking.profile import Interaction

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def scored(rng: random.Random, n: int) -> Scored:
    ids = [f"i{rng.randrange(1_000):03d}" for _ in range(n)]
    ids = list(dict.fromkeys(ids))
    # coarse values: many ties, which must break by item id as Scored.ranked does
    comps = np.array([[rng.choice((0.0, 0.25, 0.5, 1.0)) for _ in COMPONENTS] for _ in ids])
    return Scored(ids, np.zeros((len(ids), 3)), comps)


def test_bulk_figures_equal_the_metrics_of_the_ranked_lists() -> None:
    """For random candidates (with ties), truths and weights, figures() gives exactly the mean
    HitRate@10, NDCG@10 and Recall@20 of Scored.ranked's lists."""
    rng = random.Random(3)
    users = {f"u{k}": scored(rng, rng.randint(0, 60)) for k in range(40)}
    truth = {
        u: frozenset(rng.sample(sc.ids, min(len(sc.ids), rng.randint(1, 4))) or ["absent"])
        for u, sc in users.items()
    }
    shoppers = _prepare(users, truth)
    # one component alone ties many candidates; mixtures tie fewer
    vectors = np.vstack(
        [np.eye(len(COMPONENTS)), [[rng.random() for _ in COMPONENTS] for _ in range(3)]]
    )
    got = figures(shoppers, vectors)
    for column, w in enumerate(vectors):
        weights = Weights(**dict(zip(COMPONENTS, map(float, w), strict=True)))
        lists = {u: [r.item_id for r in sc.ranked(weights, 20)] for u, sc in users.items()}
        for row, (metric, k) in enumerate(((hit_rate, 10), (ndcg, 10), (recall, 20))):
            want = np.mean([metric(lists[u], truth[u], k) for u in users])
            assert got[row, column] == pytest.approx(want, abs=1e-12), (metric.__name__, column)


def test_validation_window_is_the_last_fraction_of_the_history() -> None:
    """The cutoff sits ``fraction`` of the span before the newest interaction; the split's
    truth holds only items new to a shopper after it, its history only what came before."""
    history = {
        "a": [
            Interaction("1", "x", "purchase", T0),
            Interaction("2", "y", "purchase", T0 + timedelta(days=95)),
        ],
        "b": [
            Interaction("3", "y", "purchase", T0 + timedelta(days=10)),
            Interaction("4", "y", "purchase", T0 + timedelta(days=99)),
            Interaction("5", "z", "purchase", T0 + timedelta(days=100)),
        ],
    }
    cutoff = validation_cutoff(history, 0.1)
    assert cutoff == T0 + timedelta(days=90)
    before, split = validation_split(history, cutoff)
    assert all(i.at < cutoff for h in before.values() for i in h)
    assert split.truth == {"a": frozenset({"y"})}  # z was unknown before the cutoff; b's y not new
    with pytest.raises(ValueError):
        validation_cutoff(history, 1.5)
