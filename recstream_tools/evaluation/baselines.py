"""The baselines a recommender engineer would pick instead of recstream, on the same split.

Each trains on the shoppers x items matrix of the history (1 per item a shopper interacted with:
the classical setting these methods are published with) and ranks every catalogue item a
shopper has not interacted with:

- item-kNN: cosine of item columns, the ``k`` nearest kept per item, summed over the history;
- EASE (Steck, 2019): closed form, only up to a size where items x items fits in memory;
- ALS: ``implicit``'s alternating least squares (Hu, Koren, Volinsky, 2008).

Hyperparameters are chosen on a validation window cut from the history (never the evaluated
period) by :func:`choose`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from recstream_tools.evaluation.metrics import ndcg
from stream.ranking.model import ease_weights, interaction_matrix, knn_rows
from stream.ranking.profile import Interaction

Lists = dict[str, list[str]]
Baseline = Callable[[Mapping[str, Sequence[Interaction]], Sequence[str], int, Any], Lists]

_UNIT = {"view": 1.0, "click": 1.0, "add_to_cart": 1.0, "purchase": 1.0}
_NO_DECAY = 1e12


def _binary(
    histories: Mapping[str, Sequence[Interaction]],
) -> tuple[sp.csr_matrix, list[str], list[str]]:
    m = interaction_matrix(histories, _UNIT, _NO_DECAY)
    x = m.x.copy()
    x.data[:] = 1.0
    return sp.csr_matrix(x), m.items, m.shoppers


def _top(
    scores: np.ndarray[Any, Any], seen: np.ndarray[Any, Any], items: list[str], n: int
) -> list[str]:
    scores = scores.astype(np.float64, copy=True)
    scores[seen] = -np.inf
    n = min(n, int(np.isfinite(scores).sum()))
    if n <= 0:
        return []
    part = np.argpartition(-scores, n - 1)[:n]
    order = part[np.lexsort((part, -scores[part]))]
    return [items[k] for k in order]


def _lists(
    x: sp.csr_matrix,
    items: list[str],
    shoppers: list[str],
    users: Sequence[str],
    n: int,
    scores_of: Callable[[int], np.ndarray[Any, Any]],
) -> Lists:
    row = {u: k for k, u in enumerate(shoppers)}
    out: Lists = {}
    for user in users:
        if user not in row:
            out[user] = []
            continue
        r = row[user]
        seen = x.indices[x.indptr[r] : x.indptr[r + 1]]
        out[user] = _top(np.asarray(scores_of(r)).ravel(), seen, items, n)
    return out


def item_knn(
    histories: Mapping[str, Sequence[Interaction]], users: Sequence[str], n: int, k: Any
) -> Lists:
    x, items, shoppers = _binary(histories)
    rows = knn_rows(x, int(k))
    cols = [j for row in rows for j, _ in row]
    vals = [w for row in rows for _, w in row]
    ptr = np.cumsum([0, *(len(row) for row in rows)])
    sim = sp.csr_matrix((vals, cols, ptr), shape=(len(items), len(items)))
    return _lists(x, items, shoppers, users, n, lambda r: (x[r] @ sim).toarray())


def ease(
    histories: Mapping[str, Sequence[Interaction]], users: Sequence[str], n: int, l2: Any
) -> Lists:
    x, items, shoppers = _binary(histories)
    b = ease_weights(x, float(l2))
    return _lists(x, items, shoppers, users, n, lambda r: x[r] @ b)


def ease_decayed(
    histories: Mapping[str, Sequence[Interaction]], users: Sequence[str], n: int, hyper: Any
) -> Lists:
    """EASE on training weights halved every ``half_life_days`` before the newest interaction
    (the variant that won the issue's table); the shopper's row is the same decayed row."""
    l2, half_life_days = hyper
    m = interaction_matrix(histories, _UNIT, half_life_days * 24.0)
    b = ease_weights(m.x, float(l2))
    return _lists(m.x, m.items, m.shoppers, users, n, lambda r: m.x[r] @ b)


def als(
    histories: Mapping[str, Sequence[Interaction]], users: Sequence[str], n: int, factors: Any
) -> Lists:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    x, items, shoppers = _binary(histories)
    with threadpool_limits(1, "blas"):  # implicit runs its own threads; BLAS's would fight them
        model = AlternatingLeastSquares(
            factors=int(factors), regularization=0.05, iterations=20, random_state=42
        )
        model.fit(x.astype(np.float32), show_progress=False)
    user_f, item_f = np.asarray(model.user_factors), np.asarray(model.item_factors)
    return _lists(x, items, shoppers, users, n, lambda r: item_f @ user_f[r])


BASELINES: dict[str, tuple[Baseline, tuple[Any, ...]]] = {
    "item_knn": (item_knn, (50, 200, 500)),
    "ease": (ease, (50.0, 200.0, 500.0, 1_000.0)),
    "ease_decayed": (
        ease_decayed,
        tuple((l2, days) for l2 in (50.0, 100.0, 300.0) for days in (30.0, 90.0)),
    ),
    "als": (als, (32, 64, 128)),
}
"""Each baseline and the values of its one hyperparameter tried on the validation window."""


def choose(
    baseline: Baseline,
    values: Sequence[Any],
    history: Mapping[str, Sequence[Interaction]],
    truth: Mapping[str, frozenset[str]],
    n: int,
) -> tuple[Any, dict[str, float]]:
    """The value of best NDCG@10 on a validation split, and every value's NDCG@10."""
    users = sorted(truth)
    figures: dict[str, float] = {}
    best: tuple[float, Any] | None = None
    for value in values:
        lists = baseline(history, users, n, value)
        figure = float(np.mean([ndcg(lists.get(u, []), truth[u], 10) for u in users]))
        figures[str(value)] = round(figure, 6)
        if best is None or figure > best[0]:
            best = (figure, value)
    assert best is not None
    return best[1], figures
