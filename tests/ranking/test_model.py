"""The learned model: training (EASE, item-kNN) and the fold-in, each against a dense numpy
computation written here from the formulas, not from recstream's code."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from stream.ranking.model import EASE, KNN, fold_in, shopper_weights, train
from stream.ranking.profile import Interaction

WEIGHTS = {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def histories(seed: int, users: int = 40, items: int = 25) -> dict[str, list[Interaction]]:
    rng = random.Random(seed)
    out = {}
    for u in range(users):
        events = []
        for k in range(rng.randint(1, 9)):
            events.append(
                Interaction(
                    f"u{u}-{k}",
                    f"i{rng.randrange(items):02d}",
                    rng.choice(list(WEIGHTS)),
                    T0 + timedelta(hours=rng.randint(0, 2_000)),
                )
            )
        out[f"u{u:02d}"] = sorted(events, key=lambda i: (i.at, i.event_id))
    return out


def dense(hist: dict[str, list[Interaction]], half_life: float) -> tuple[np.ndarray, list[str]]:
    """The training matrix from its definition: strongest weight / max weight, decayed."""
    items = sorted({i.item_id for h in hist.values() for i in h})
    ref = max(i.at for h in hist.values() for i in h)
    x = np.zeros((len(hist), len(items)))
    for r, user in enumerate(sorted(hist)):
        for i in hist[user]:
            age = (ref - i.at).total_seconds() / 3600
            w = WEIGHTS[i.type] / 8.0 * 0.5 ** (age / half_life)
            c = items.index(i.item_id)
            x[r, c] = max(x[r, c], w)
    return x, items


def top(row: np.ndarray, items: list[str], n: int) -> dict[str, float]:
    order = sorted((k for k in range(len(row)) if row[k] > 0), key=lambda k: (-row[k], items[k]))
    return {items[k]: float(row[k]) for k in order[:n]}


def test_ease_rows_equal_the_closed_form() -> None:
    """Each item's row is its row of B = I - P / diag(P), P = (X'X + l2 I)^-1, zero diagonal,
    the positive weights only, best first, at most ``neighbours`` of them."""
    hist = histories(1)
    model = train(hist, WEIGHTS, half_life_hours=500.0, l2=3.0, neighbours=6, dense_max_items=1_000)
    x, items = dense(hist, 500.0)
    p = np.linalg.inv(x.T @ x + 3.0 * np.eye(len(items)))
    b = np.eye(len(items)) - p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    assert model.kind == EASE
    assert model.items == len(items) and model.shoppers == len(hist)
    for k, item in enumerate(items):
        want = top(b[k], items, 6)
        got = dict(model.rows.get(item, []))
        assert list(got) == list(want), item
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_beyond_the_dense_bound_rows_are_item_knn_cosines() -> None:
    """Above ``dense_max_items``: each row holds the items of highest cosine between columns of
    X (never the item itself), computed in blocks."""
    hist = histories(2, users=60, items=30)
    model = train(hist, WEIGHTS, half_life_hours=300.0, l2=1.0, neighbours=5, dense_max_items=3)
    x, items = dense(hist, 300.0)
    norms = np.linalg.norm(x, axis=0)
    cos = (x.T @ x) / np.outer(norms, norms)
    np.fill_diagonal(cos, 0.0)
    assert model.kind == KNN
    for k, item in enumerate(items):
        want = top(cos[k], items, 5)
        got = dict(model.rows.get(item, []))
        assert list(got) == list(want), item
        assert got == pytest.approx(want, rel=1e-9)


def test_fold_in_is_the_shoppers_vector_times_the_kept_rows() -> None:
    """score(j) = sum_h x_h B[h, j] over the kept rows, x the shopper's decayed weights; a new
    interaction changes the scores at once, without retraining."""
    hist = histories(3)
    model = train(hist, WEIGHTS, half_life_hours=400.0, l2=2.0, neighbours=8, dense_max_items=1_000)
    x, items = dense(hist, 400.0)
    p = np.linalg.inv(x.T @ x + 2.0 * np.eye(len(items)))
    b = np.eye(len(items)) - p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    kept = np.zeros_like(b)
    for k in range(len(items)):
        for item, w in top(b[k], items, 8).items():
            kept[k, items.index(item)] = w

    shopper = hist["u05"]
    ref = max(i.at for i in shopper)
    side = shopper_weights(shopper, WEIGHTS, 400.0, ref)
    xu = np.zeros(len(items))
    for i in shopper:
        age = (ref - i.at).total_seconds() / 3600
        c = items.index(i.item_id)
        xu[c] = max(xu[c], WEIGHTS[i.type] / 8.0 * 0.5 ** (age / 400.0))
    want = {items[k]: v for k, v in enumerate(xu @ kept) if v > 0}
    assert fold_in(model.rows, side) == pytest.approx(want, rel=1e-9)

    later = Interaction("new", "i00", "purchase", ref + timedelta(hours=1))
    moved = fold_in(model.rows, shopper_weights([*shopper, later], WEIGHTS, 400.0, later.at))
    assert moved != fold_in(model.rows, side)


def test_no_history_or_no_weights_trains_an_empty_model() -> None:
    """Nothing to learn from gives no rows (and no error)."""
    assert train({}, WEIGHTS, half_life_hours=1, l2=1, neighbours=3, dense_max_items=9).rows == {}
    zero = dict.fromkeys(WEIGHTS, 0.0)
    assert (
        train(histories(4), zero, half_life_hours=1, l2=1, neighbours=3, dense_max_items=9).rows
        == {}
    )
