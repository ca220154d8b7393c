"""One explainable ranking stage: score = sum of weight x component, each component in [0, 1].

Components: ``semantic`` (cosine of the shopper's profile and the item, negative clipped to 0),
``collaborative`` (live co-occurrence with the shopper's recent items), ``learned`` (the trained
collaborative model folded in with the shopper's history, :mod:`stream.ranking.model`) and
``popularity`` (each divided by the largest among the candidates, so the weights compare like
with like whatever the raw scale), and ``price`` (a Gaussian in log price around the shopper's
usual price). The components travel with each result, so a recommendation can say
why it was made. Nothing is rounded here; serialisation rounds.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from stream.store.base import Vector

if TYPE_CHECKING:
    from stream.settings import Settings

COMPONENTS = ("semantic", "collaborative", "popularity", "price", "learned")

_Matrix = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class Weights:
    semantic: float
    collaborative: float
    popularity: float
    price: float
    learned: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Weights:
        return cls(
            semantic=settings.rank_weight_semantic,
            collaborative=settings.rank_weight_collaborative,
            popularity=settings.rank_weight_popularity,
            price=settings.rank_weight_price,
            learned=settings.rank_weight_learned,
        )

    def vector(self) -> _Matrix:
        """The weights in :data:`COMPONENTS` order."""
        return np.array([getattr(self, name) for name in COMPONENTS], dtype=np.float64)


@dataclass(frozen=True)
class Candidate:
    """An item some source (semantic search, co-occurrence, popularity) proposes."""

    item_id: str
    vector: Vector | None
    popularity: float = 0.0
    collaborative: float = 0.0
    price: float | None = None
    in_stock: bool = True
    learned: float = 0.0


@dataclass(frozen=True)
class Ranked:
    item_id: str
    score: float
    components: dict[str, float]


@dataclass(frozen=True)
class Scored:
    """The eligible candidates of one shopper and their components, before any weighting."""

    ids: list[str]
    unit: _Matrix
    """The candidates' vectors as unit rows (a zero row for an item without a vector)."""
    components: _Matrix
    """One row per candidate, one column per name in :data:`COMPONENTS`, each in [0, 1]."""

    def ranked(self, weights: Weights, n: int, mmr_lambda: float = 1.0) -> list[Ranked]:
        """The best ``n``: by score (ties by item id), or by MMR below ``mmr_lambda`` 1."""
        if not 0.0 <= mmr_lambda <= 1.0:
            raise ValueError(f"mmr_lambda must be in [0, 1], not {mmr_lambda}")
        if n <= 0 or not self.ids:
            return []
        scores = blended(self.components, weights.vector())
        if mmr_lambda >= 1.0:
            return self._ranked(best_order(scores, self.ids, n), scores)
        everyone = self._ranked(np.arange(len(self.ids)), scores)
        return _mmr(everyone, self.unit, mmr_lambda, n)

    def _ranked(self, order: npt.NDArray[np.intp], scores: _Matrix) -> list[Ranked]:
        """The candidates at ``order``, in that order (floats of Python, not of numpy)."""
        rows = self.components[order].tolist()
        return [
            Ranked(self.ids[k], s, dict(zip(COMPONENTS, row, strict=True)))
            for k, s, row in zip(order.tolist(), scores[order].tolist(), rows, strict=True)
        ]


def best_order(scores: _Matrix, ids: Sequence[str], n: int) -> npt.NDArray[np.intp]:
    """The positions of the best ``n`` scores, ties by item id: one stable sort of the scores,
    and the ids compared (as ``np.lexsort`` of ids then scores) only where two of the first
    ``n + 1`` scores are equal or one is not a number."""
    order = np.argsort(-scores, kind="stable")
    top = scores[order[: n + 1]]
    if not np.isfinite(top).all() or (top[1:] == top[:-1]).any():
        return np.lexsort((np.array(ids), -scores))[:n]
    return order[:n]


def blended(components: _Matrix, weights: _Matrix) -> _Matrix:
    """The score: each candidate's components (a row, :data:`COMPONENTS` order) weighted and
    summed; with several weight vectors (columns), one column of scores each."""
    return components @ weights


def score_arrays(
    profile: Vector | None,
    ids: list[str],
    unit: _Matrix,
    *,
    collaborative: _Matrix,
    popularity: _Matrix,
    learned: _Matrix,
    prices: _Matrix,
    price_preference: float | None,
    price_sigma: float,
) -> Scored:
    """The components of eligible candidates given as arrays (one entry per id; ``unit`` their
    unit rows, zero for none; ``prices`` NaN where unknown)."""
    matrix = np.empty((len(ids), len(COMPONENTS)), dtype=np.float64)
    columns = {
        "semantic": _semantic(profile, unit),
        "collaborative": _shares(collaborative),
        "popularity": _shares(popularity),
        "price": price_affinity(prices, price_preference, price_sigma),
        "learned": _shares(learned),
    }
    for k, name in enumerate(COMPONENTS):
        matrix[:, k] = columns[name]
    return Scored(ids, unit, matrix)


def score(
    profile: Vector | None,
    candidates: Sequence[Candidate],
    *,
    exclude: Collection[str] = (),
    price_preference: float | None = None,
    price_sigma: float = 0.5,
) -> Scored:
    """The components of every eligible candidate: excluded and out-of-stock candidates are
    dropped, of duplicate item ids the first is kept."""
    pool = _eligible(candidates, exclude)
    return score_arrays(
        profile,
        [c.item_id for c in pool],
        unit_rows([c.vector for c in pool]),
        collaborative=np.array([c.collaborative for c in pool], dtype=np.float64),
        popularity=np.array([c.popularity for c in pool], dtype=np.float64),
        learned=np.array([c.learned for c in pool], dtype=np.float64),
        prices=np.array([np.nan if c.price is None else c.price for c in pool], dtype=np.float64),
        price_preference=price_preference,
        price_sigma=price_sigma,
    )


def rank(
    profile: Vector | None,
    candidates: Sequence[Candidate],
    weights: Weights,
    *,
    n: int,
    exclude: Collection[str] = (),
    price_preference: float | None = None,
    price_sigma: float = 0.5,
    mmr_lambda: float = 1.0,
) -> list[Ranked]:
    """The best ``n`` candidates for a shopper, each with its score and components.

    Excluded and out-of-stock candidates are dropped; of duplicate item ids the first is kept.
    With ``mmr_lambda`` 1 the order is by score (ties by item id); below 1, maximal marginal
    relevance trades score for distance from the items already picked.
    """
    if not 0.0 <= mmr_lambda <= 1.0:
        raise ValueError(f"mmr_lambda must be in [0, 1], not {mmr_lambda}")
    scored = score(
        profile,
        candidates,
        exclude=exclude,
        price_preference=price_preference,
        price_sigma=price_sigma,
    )
    return scored.ranked(weights, n, mmr_lambda)


def _eligible(candidates: Sequence[Candidate], exclude: Collection[str]) -> list[Candidate]:
    first: dict[str, Candidate] = {}
    for c in candidates:
        first.setdefault(c.item_id, c)
    excluded = set(exclude)
    return [c for c in first.values() if c.in_stock and c.item_id not in excluded]


def unit_rows(vectors: Sequence[Vector | None]) -> _Matrix:
    """Vectors as unit rows of one float64 matrix; a missing, zero or non-finite vector is a
    zero row."""
    dim = next((v.shape[-1] for v in vectors if v is not None), 0)
    rows = np.zeros((len(vectors), dim), dtype=np.float64)
    present = [k for k, v in enumerate(vectors) if v is not None]
    if present:
        rows[present] = np.stack([np.asarray(vectors[k]).reshape(-1) for k in present])
    # einsum, not np.linalg.norm: no temporary as large as the matrix (freshly mapped memory
    # made the norm cost ten times the product)
    with np.errstate(invalid="ignore", over="ignore"):
        norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
        usable = (norms > 0) & np.isfinite(norms)
        rows /= np.where(usable, norms, 1.0)[:, None]
    rows[~usable] = 0.0
    return rows


def _semantic(profile: Vector | None, unit: _Matrix) -> _Matrix:
    p = unit_profile(profile) if unit.shape[1] else None
    return np.zeros(len(unit), dtype=np.float64) if p is None else cosines(unit, p)


def unit_profile(profile: Vector | None) -> _Matrix | None:
    """The profile scaled to length 1 (float64); None for a missing or zero one."""
    if profile is None:
        return None
    p = np.asarray(profile, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(p))
    if norm == 0 or not math.isfinite(norm):
        return None
    return p / norm


def cosines(unit: np.ndarray[Any, Any], profile: _Matrix) -> _Matrix:
    """The semantic component of each unit row: its cosine with a unit profile, clipped to
    [0, 1] (rounding can push a cosine a hair past 1); computed in the rows' precision."""
    products = np.asarray(unit @ profile.astype(unit.dtype), dtype=np.float64)
    return np.clip(products, 0.0, 1.0)


def _shares(values: _Matrix) -> _Matrix:
    """Each value over the largest (negatives count 0); all 0 when none is positive."""
    positive = np.maximum(values, 0.0)
    largest = float(positive.max()) if len(positive) else 0.0
    if not largest > 0:
        return np.zeros(len(values), dtype=np.float64)
    return np.minimum(1.0, positive / largest)


def price_affinity(prices: _Matrix, preference: float | _Matrix | None, sigma: float) -> _Matrix:
    """The price component: a Gaussian in log price around the shopper's preference (the mean
    log price they interacted with), 0 without a preference or a positive price;
    ``preference`` one number, or one per price (NaN: none)."""
    if sigma <= 0:
        raise ValueError(f"price_sigma must be positive, not {sigma}")
    out = np.zeros(len(prices), dtype=np.float64)
    if preference is None:
        return out
    centre = np.broadcast_to(np.asarray(preference, dtype=np.float64), prices.shape)
    known = np.isfinite(prices) & (prices > 0) & np.isfinite(centre)
    out[known] = np.exp(-((np.log(prices[known]) - centre[known]) ** 2) / (2 * sigma**2))
    return out


def _mmr(ranked: list[Ranked], unit: _Matrix, lam: float, n: int) -> list[Ranked]:
    """Greedy maximal marginal relevance: lam x score - (1 - lam) x max cosine to the picked."""
    # anti-similar is as diverse as it gets: negative cosines do not earn a bonus
    redundancy = np.zeros(len(ranked), dtype=np.float64)
    left = list(range(len(ranked)))
    picked: list[Ranked] = []
    while left and len(picked) < n:
        best = min(
            left,
            key=lambda k: (-(lam * ranked[k].score - (1 - lam) * redundancy[k]), ranked[k].item_id),
        )
        left.remove(best)
        picked.append(ranked[best])
        redundancy = np.maximum(redundancy, unit @ unit[best])
    return picked
