"""Top-k ranking metrics with binary relevance: pure functions of a ranked list and a truth set."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence

Metric = Callable[[Sequence[str], Collection[str], int], float]


def hit_rate(ranked: Sequence[str], truth: Collection[str], k: int) -> float:
    """1 when any truth item is in the top ``k``, else 0."""
    return 1.0 if any(item in truth for item in ranked[:k]) else 0.0


def recall(ranked: Sequence[str], truth: Collection[str], k: int) -> float:
    """The share of the truth found in the top ``k``; 0 for an empty truth."""
    if not truth:
        return 0.0
    return len(set(ranked[:k]) & set(truth)) / len(truth)


def ndcg(ranked: Sequence[str], truth: Collection[str], k: int) -> float:
    """DCG of the top ``k`` over the best possible DCG, ``min(|truth|, k)`` hits at the top."""
    ideal = sum(1.0 / math.log2(r + 2) for r in range(min(len(truth), k)))
    if ideal == 0:
        return 0.0
    seen: set[str] = set()
    dcg = 0.0
    for r, item in enumerate(ranked[:k]):
        # a duplicate is not a second hit: the list has one slot's worth of that item
        if item in truth and item not in seen:
            dcg += 1.0 / math.log2(r + 2)
        seen.add(item)
    return dcg / ideal


def mean_over_users(
    metric: Metric,
    ranked: Mapping[str, Sequence[str]],
    truth: Mapping[str, Collection[str]],
    k: int,
) -> float:
    """The metric's mean over the users in ``truth`` (a user without a list scores 0)."""
    if not truth:
        return 0.0
    return math.fsum(metric(ranked.get(u, ()), t, k) for u, t in truth.items()) / len(truth)
