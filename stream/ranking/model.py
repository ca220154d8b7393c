"""The learned collaborative model: item-to-item weights trained from every shopper's history.

Pure: numpy and scipy, no I/O, no clock. Training turns histories into a shoppers x items
matrix (each cell the strongest interaction's type weight, halved every ``half_life_hours``
before the newest interaction of all) and learns, per item, the items it predicts and how
strongly: :func:`train` keeps the ``neighbours`` largest weights of each item's row.

- Up to ``dense_max_items`` items: EASE (Steck, 2019), the closed-form linear autoencoder
  ``B = I - P / diag(P)`` with ``P = (X'X + lambda I)^-1`` and a zero diagonal. Memory and time
  grow with the square and cube of the item count (about 3 x items^2 x 8 bytes at the peak).
- Beyond: item-kNN, cosine of the item columns (``X'X`` scaled by the columns' norms), built
  in blocks of columns, so memory grows with the interactions and the kept rows, never with
  items^2.

A shopper's side is folded in at recommendation time (:func:`fold_in`): the score of item j is
``sum_h x_h B[h, j]`` over the shopper's own history h, so a new event changes the list at once,
without retraining.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import scipy.sparse as sp

from stream.ranking.profile import Interaction, interaction_weight

EASE = "ease"
KNN = "knn"
_KNN_BLOCK = 2_048


@dataclass(frozen=True)
class ItemModel:
    """Per item, the items it predicts (best first) and their weights."""

    kind: str
    rows: dict[str, list[tuple[str, float]]]
    shoppers: int
    items: int
    interactions: int


@dataclass(frozen=True)
class Matrix:
    x: sp.csr_matrix
    items: list[str]
    shoppers: list[str]


def interaction_matrix(
    histories: Mapping[str, Sequence[Interaction]],
    weights: Mapping[str, float],
    half_life_hours: float,
) -> Matrix:
    """Shoppers x items: each cell the strongest of the shopper's interactions with the item,
    its type weight over the largest type weight, halved every ``half_life_hours`` before the
    newest interaction in ``histories``. Cells that weigh nothing are left out."""
    ref = max((i.at for h in histories.values() for i in h), default=None)
    top = max(weights.values(), default=0.0)
    if ref is None or top <= 0:
        return Matrix(sp.csr_matrix((0, 0)), [], [])
    scale = {k: v / top for k, v in weights.items()}
    cells: dict[tuple[str, str], float] = {}
    for user, history in histories.items():
        for i in history:
            w = interaction_weight(i, ref, scale, half_life_hours)
            if w > cells.get((user, i.item_id), 0.0):
                cells[(user, i.item_id)] = w
    items = sorted({item for _, item in cells})
    shoppers = sorted({user for user, _ in cells})
    col = {k: n for n, k in enumerate(items)}
    row = {k: n for n, k in enumerate(shoppers)}
    x = sp.csr_matrix(
        (
            np.fromiter(cells.values(), dtype=np.float64, count=len(cells)),
            (
                np.fromiter((row[u] for u, _ in cells), dtype=np.int64, count=len(cells)),
                np.fromiter((col[i] for _, i in cells), dtype=np.int64, count=len(cells)),
            ),
        ),
        shape=(len(shoppers), len(items)),
    )
    return Matrix(x, items, shoppers)


def train(
    histories: Mapping[str, Sequence[Interaction]],
    weights: Mapping[str, float],
    *,
    half_life_hours: float,
    l2: float,
    neighbours: int,
    dense_max_items: int,
) -> ItemModel:
    """The item model of ``histories``: EASE up to ``dense_max_items`` items, item-kNN beyond."""
    m = interaction_matrix(histories, weights, half_life_hours)
    n = len(m.items)
    if n <= dense_max_items:
        kind, rows = EASE, _top_rows(ease_weights(m.x, l2), neighbours)
    else:
        kind, rows = KNN, knn_rows(m.x, neighbours)
    named = {m.items[k]: [(m.items[j], w) for j, w in row] for k, row in enumerate(rows) if row}
    return ItemModel(kind, named, len(m.shoppers), n, int(m.x.nnz))


def ease_weights(x: sp.csr_matrix, l2: float) -> np.ndarray[Any, np.dtype[np.float64]]:
    """EASE's item x item weights: ``B = I - P / diag(P)``, ``P = (X'X + l2 I)^-1``, diag 0."""
    if l2 <= 0:
        raise ValueError(f"the L2 weight must be positive, not {l2}")
    gram = np.asarray((x.T @ x).todense(), dtype=np.float64)
    gram[np.diag_indices_from(gram)] += l2
    p = np.linalg.inv(gram)
    del gram
    b = p / -np.diag(p)  # column j divided by -P[j, j]
    np.fill_diagonal(b, 0.0)
    return b


def knn_rows(x: sp.csr_matrix, neighbours: int) -> list[list[tuple[int, float]]]:
    """Per item, its ``neighbours`` most cosine-similar items (co-interaction), in blocks."""
    xc = sp.csc_matrix(x)
    norms = np.sqrt(np.asarray(xc.multiply(xc).sum(axis=0)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    xn = sp.csr_matrix(xc @ sp.diags(inv))
    xt = sp.csr_matrix(xn.T)
    rows: list[list[tuple[int, float]]] = []
    for start in range(0, xt.shape[0], _KNN_BLOCK):
        block = sp.csr_matrix(xt[start : start + _KNN_BLOCK] @ xn)
        for r in range(block.shape[0]):
            lo, hi = block.indptr[r], block.indptr[r + 1]
            cols, vals = block.indices[lo:hi], block.data[lo:hi]
            keep = cols != start + r
            rows.append(_best(cols[keep], vals[keep], neighbours))
    return rows


def _top_rows(
    b: np.ndarray[Any, np.dtype[np.float64]], neighbours: int
) -> list[list[tuple[int, float]]]:
    cols = np.arange(b.shape[1])
    return [_best(cols, b[r], neighbours) for r in range(b.shape[0])]


def _best(
    cols: np.ndarray[Any, Any], vals: np.ndarray[Any, Any], n: int
) -> list[tuple[int, float]]:
    """The ``n`` largest positive values with their columns, largest first (ties by column)."""
    positive = vals > 0
    cols, vals = cols[positive], vals[positive]
    if len(vals) > n:
        part = np.argpartition(-vals, n - 1)[:n]
        cols, vals = cols[part], vals[part]
    order = np.lexsort((cols, -vals))
    return [(int(cols[k]), float(vals[k])) for k in order]


def shopper_weights(
    history: Iterable[Interaction],
    weights: Mapping[str, float],
    half_life_hours: float,
    ref: datetime,
) -> dict[str, float]:
    """The shopper's side of the model: per item, the strongest interaction's weight at ``ref``
    (type weight over the largest, halved every ``half_life_hours``), as in training."""
    top = max(weights.values(), default=0.0)
    if top <= 0:
        return {}
    scale = {k: v / top for k, v in weights.items()}
    out: dict[str, float] = {}
    for i in history:
        w = interaction_weight(i, ref, scale, half_life_hours)
        if w > out.get(i.item_id, 0.0):
            out[i.item_id] = w
    return out


def fold_in(
    rows: Mapping[str, Sequence[tuple[str, float]]], shopper: Mapping[str, float]
) -> dict[str, float]:
    """Each item's learned score for a shopper: ``sum_h shopper[h] x rows[h][item]``; only
    positive scores are kept (an item nothing points to scores nothing)."""
    scores: dict[str, float] = {}
    for item, x in shopper.items():
        for other, w in rows.get(item, ()):
            scores[other] = scores.get(other, 0.0) + x * w
    return {k: v for k, v in scores.items() if v > 0 and math.isfinite(v)}
