"""A neighbour list as published, and its record in the item's own payload (``nb_ids``,
``nb_scores``, ``nb_floor``; :meth:`NeighbourState.payload`): what the store finder searches by
(a keyword index on the ids, a float index on the floor). The memory finder keeps its records in
a journal instead (:mod:`stream.catalog.journal`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from stream.store import Hit

NO_FLOOR = -2.0
"""Floor of a list shorter than k, or of an item with no recorded list: any item qualifies."""
SCORE_TOLERANCE = 1e-6
_NUMBERS = {int, float}


@dataclass(frozen=True)
class NeighbourState:
    """A list as published: ids and scores, best first."""

    ids: tuple[str, ...]
    scores: tuple[float, ...]

    @classmethod
    def from_hits(cls, hits: list[Hit]) -> NeighbourState:
        return cls(tuple(h.key for h in hits), tuple(round(h.score, 6) for h in hits))

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, float]]) -> NeighbourState:
        pairs = list(pairs)
        return cls(tuple(k for k, _ in pairs), tuple(round(float(s), 6) for _, s in pairs))

    @classmethod
    def from_payload(cls, payload: Mapping[str, object]) -> NeighbourState | None:
        """The recorded list, or None when there is none or it is not well formed. Scores are
        recorded as one comma-separated string (:meth:`payload`); a list of numbers is read too."""
        ids, scores = payload.get("nb_ids"), payload.get("nb_scores")
        if not isinstance(ids, list):
            return None
        if isinstance(scores, str):
            try:
                values = tuple(map(float, scores.split(","))) if scores else ()
            except ValueError:
                return None
        elif isinstance(scores, list) and set(map(type, scores)) <= _NUMBERS:  # bool is no score
            values = tuple(map(float, scores))
        else:
            return None
        if len(ids) != len(values) or not all(map(math.isfinite, values)):
            return None
        return cls(tuple(map(str, ids)), values)

    def same_as(self, other: NeighbourState | None) -> bool:
        return (
            other is not None
            and self.ids == other.ids
            and len(self.scores) == len(other.scores)
            and all(
                abs(a - b) <= SCORE_TOLERANCE
                for a, b in zip(self.scores, other.scores, strict=True)
            )
        )

    def floor(self, k: int) -> float:
        """The score an item must beat to enter this list: its k-th, or NO_FLOOR when shorter."""
        return self.scores[k - 1] if len(self.scores) >= k else NO_FLOOR

    def payload(self, k: int) -> dict[str, object]:
        """The record as item-payload fields (the store finder's form)."""
        # the scores as one string: Qdrant Edge's binding converts a payload list element by
        # element, and this record is written for every list published (bench/README.md)
        scores = ",".join(map(repr, self.scores))
        return {"nb_ids": list(self.ids), "nb_scores": scores, "nb_floor": self.floor(k)}


def merged(state: NeighbourState, entries: Mapping[str, float], k: int) -> NeighbourState:
    """``state`` with items that entered it (id -> cosine) merged in, best k kept.

    Exact when ``state`` was the top k and no item on it changed or left since (then every
    other item that can now be on the list is among ``entries``)."""
    if len(entries) == 1 and _descending(state.scores):  # a record read back may not be
        [(item, score)] = entries.items()
        if item not in state.ids:
            return _inserted(state, item, round(float(score), 6), k)
    pairs = list(zip(state.ids, state.scores, strict=True))
    if not entries.keys().isdisjoint(state.ids):  # not from the processor: an entry replaces
        pairs = [(i, s) for i, s in pairs if i not in entries]
    # the recorded scores are rounded already; sorted() is stable, so on a tie the recorded
    # item stays ahead of the entering one
    pairs.extend((i, round(float(s), 6)) for i, s in entries.items())
    pairs.sort(key=_score, reverse=True)
    best = pairs[:k]
    return NeighbourState(tuple(i for i, _ in best), tuple(s for _, s in best))


def _inserted(state: NeighbourState, item: str, score: float, k: int) -> NeighbourState:
    """:func:`merged` for one entering item not on a list in score order (most merges; faster
    than the sort, even with the order checked): placed after every recorded score >= its own,
    where the stable sort would place it."""
    scores = state.scores
    at = len(scores)
    for position, recorded in enumerate(scores):
        if recorded < score:
            at = position
            break
    if at >= k:
        return state if len(scores) <= k else NeighbourState(state.ids[:k], scores[:k])
    ids = (*state.ids[:at], item, *state.ids[at:])
    return NeighbourState(ids[:k], (*scores[:at], score, *scores[at:])[:k])


def _descending(scores: tuple[float, ...]) -> bool:
    # sorted() in C beats a pairwise comparison in Python (bench/README.md); scores are
    # finite: from_payload and the messages refuse NaN, which this would not catch
    return list(scores) == sorted(scores, reverse=True)


def _score(pair: tuple[str, float]) -> float:
    return pair[1]
