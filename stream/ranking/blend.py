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
        scores = self.components @ weights.vector()
        ranked = [
            Ranked(item_id, float(score), dict(zip(COMPONENTS, map(float, row), strict=True)))
            for item_id, score, row in zip(self.ids, scores, self.components, strict=True)
        ]
        if mmr_lambda >= 1.0:
            return sorted(ranked, key=lambda r: (-r.score, r.item_id))[:n]
        return _mmr(ranked, self.unit, mmr_lambda, n)


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
    if price_sigma <= 0:
        raise ValueError(f"price_sigma must be positive, not {price_sigma}")
    pool = _eligible(candidates, exclude)
    unit = _unit_rows([c.vector for c in pool])
    if not pool:
        return Scored([], unit, np.zeros((0, len(COMPONENTS)), dtype=np.float64))
    columns = {
        "semantic": _semantic(profile, unit),
        "collaborative": _shares([c.collaborative for c in pool]),
        "popularity": _shares([c.popularity for c in pool]),
        "price": [_price_affinity(c.price, price_preference, price_sigma) for c in pool],
        "learned": _shares([c.learned for c in pool]),
    }
    matrix = np.array([columns[name] for name in COMPONENTS], dtype=np.float64).T
    return Scored([c.item_id for c in pool], unit, matrix)


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


def _unit_rows(vectors: list[Vector | None]) -> _Matrix:
    """Vectors as unit rows of one matrix; a missing (or zero) vector is a zero row."""
    dim = next((v.shape[-1] for v in vectors if v is not None), 0)
    rows = np.zeros((len(vectors), dim), dtype=np.float64)
    for k, v in enumerate(vectors):
        if v is None:
            continue
        norm = float(np.linalg.norm(v))
        if norm > 0 and math.isfinite(norm):
            rows[k] = np.asarray(v, dtype=np.float64).reshape(-1) / norm
    return rows


def _semantic(profile: Vector | None, unit: _Matrix) -> list[float]:
    if profile is None or unit.shape[1] == 0:
        return [0.0] * len(unit)
    p = np.asarray(profile, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(p))
    if norm == 0 or not math.isfinite(norm):
        return [0.0] * len(unit)
    # clip both ends: rounding can push a cosine a hair past 1
    return [min(1.0, max(0.0, float(c))) for c in unit @ (p / norm)]


def _shares(values: list[float]) -> list[float]:
    """Each value over the largest (negatives count 0); all 0 when none is positive."""
    largest = max(max(values), 0.0)
    return [min(1.0, max(0.0, v) / largest) if largest > 0 else 0.0 for v in values]


def _price_affinity(price: float | None, preference: float | None, sigma: float) -> float:
    if price is None or preference is None or not price > 0:
        return 0.0
    return math.exp(-((math.log(price) - preference) ** 2) / (2 * sigma**2))


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
