"""A shopper's interaction history and what it says: pure functions, no I/O, no clock.

A history is a list of :class:`Interaction`, sorted by ``(at, event_id)``. Every time-dependent
value takes its reference time from the data (the latest interaction) or from the caller, so
replaying the same events gives the same profile.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from schemas import jsontext
from schemas.behaviour import UserEvent
from stream.store.base import Vector

PURCHASE = "purchase"
_SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class Interaction:
    """One thing a shopper did with one item, as kept in the shopper's history."""

    event_id: str
    item_id: str
    type: str
    at: datetime
    quantity: int = 1
    price: float | None = None

    @classmethod
    def of(cls, event: UserEvent) -> Interaction:
        """The history entry of a validated ``user.events`` message."""
        return cls(
            event_id=event.event_id,
            item_id=event.item_id,
            type=event.type,
            at=event.occurred_at,
            quantity=event.quantity,
            price=event.price,
        )

    def to_payload(self) -> dict[str, Any]:
        """A JSON-safe dict (``at`` as an ISO 8601 string)."""
        return {
            "event_id": self.event_id,
            "item_id": self.item_id,
            "type": self.type,
            "at": self.at.isoformat(),
            "quantity": self.quantity,
            "price": self.price,
        }

    @classmethod
    def from_payload(cls, d: Mapping[str, Any]) -> Interaction:
        """Inverse of :meth:`to_payload`; raises ``ValueError`` on a malformed payload."""
        if not isinstance(d, Mapping):
            raise ValueError("an interaction payload must be an object")
        event_id, item_id, kind = (_text(d, name) for name in ("event_id", "item_id", "type"))
        at_raw = d.get("at")
        if not isinstance(at_raw, str):
            raise ValueError("at must be an ISO 8601 string")
        at = datetime.fromisoformat(at_raw)
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("at must carry a time zone")
        quantity = d.get("quantity", 1)
        # bool is an int subclass; a JSON true is not a quantity
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            raise ValueError("quantity must be a positive integer")
        price = d.get("price")
        if price is not None:
            if not isinstance(price, int | float) or isinstance(price, bool):
                raise ValueError("price must be a number or null")
            if not math.isfinite(price) or price < 0:
                raise ValueError("price must be finite and not negative")
            price = float(price)
        return cls(event_id, item_id, kind, at, quantity, price)


def _text(d: Mapping[str, Any], name: str) -> str:
    value = d.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def _order(i: Interaction) -> tuple[datetime, str]:
    return (i.at, i.event_id)


def merge_history(
    history: Sequence[Interaction], new: Sequence[Interaction], max_len: int
) -> tuple[list[Interaction], list[Interaction]]:
    """Merge ``new`` into ``history``: (the newest ``max_len``, sorted, and what was added).

    An event id names one event: a second interaction with a known id is a replay and is ignored,
    which makes the merge idempotent and, for consistent replays, independent of arrival order and
    batching. "Added" lists, in history order, the interactions of ``new`` that are in the result
    and were not in ``history``: one too old to fit is not reported, so that replaying it later
    does not report it again.
    """
    by_id: dict[str, Interaction] = {}
    for i in history:
        by_id.setdefault(i.event_id, i)
    known = set(by_id)
    for i in new:
        by_id.setdefault(i.event_id, i)
    merged = sorted(by_id.values(), key=_order)
    kept = merged[max(0, len(merged) - max_len) :]
    added = [i for i in kept if i.event_id not in known]
    return kept, added


def interaction_weight(
    i: Interaction, ref: datetime, weights: Mapping[str, float], half_life_hours: float
) -> float:
    """The weight of the interaction's type, halved every ``half_life_hours`` of age at ``ref``.

    Quantity does not multiply it: ordering ten of an item is one decision about that item, and
    letting it count ten times would let bulk buyers drown out everything else they did. An
    interaction after ``ref`` counts as new (age 0); a type without a weight counts nothing.
    """
    age_hours = max(0.0, (ref - i.at).total_seconds() / _SECONDS_PER_HOUR)
    return weights.get(i.type, 0.0) * math.pow(0.5, age_hours / half_life_hours)


def profile_vector(
    history: Sequence[Interaction],
    item_vectors: Mapping[str, Vector],
    weights: Mapping[str, float],
    half_life_hours: float,
) -> Vector | None:
    """The L2-normalised, decay-weighted sum of the vectors of the items in ``history``.

    The reference time is the latest interaction, so a profile does not change merely because
    time passes. Items without a vector (not encoded yet, or deleted) are skipped; they count as
    soon as a later call has their vector. None when nothing usable remains.
    """
    if not history:
        return None
    ref = max(i.at for i in history)
    total: np.ndarray[Any, np.dtype[np.float64]] | None = None
    for i in history:
        vector = item_vectors.get(i.item_id)
        if vector is None:
            continue
        weight = interaction_weight(i, ref, weights, half_life_hours)
        if weight == 0.0:
            continue
        # accumulate in float64 so long histories lose no precision to float32 rounding
        term = weight * np.asarray(vector, dtype=np.float64)
        total = term if total is None else total + term
    if total is None:
        return None
    norm = float(np.linalg.norm(total))
    if not math.isfinite(norm) or norm <= 0.0:
        return None
    return (total / norm).astype(np.float32)


def price_preference(
    history: Sequence[Interaction], item_prices: Mapping[str, float | None]
) -> float | None:
    """The mean natural log of the prices the shopper interacted with, or None if none is known.

    An interaction's own price (what the shopper saw) wins over the item's current price.
    """
    logs = []
    for i in history:
        price = i.price if i.price is not None else item_prices.get(i.item_id)
        if price is not None and price > 0 and math.isfinite(price):
            logs.append(math.log(price))
    return math.fsum(logs) / len(logs) if logs else None


def recently_purchased(
    history: Iterable[Interaction], ref: datetime, window_days: float
) -> set[str]:
    """Items purchased no more than ``window_days`` before ``ref``; a window of 0 means none.

    A purchase after ``ref`` counts too: the shopper has the item either way.
    """
    if window_days <= 0:
        return set()
    try:
        since = ref - timedelta(days=window_days)
    except OverflowError:  # a window reaching back before year 1: every purchase is in it
        return {i.item_id for i in history if i.type == PURCHASE}
    return {i.item_id for i in history if i.type == PURCHASE and i.at >= since}


def recent_items(history: Iterable[Interaction], n: int) -> list[str]:
    """The last ``n`` distinct item ids, most recent first."""
    items: list[str] = []
    seen: set[str] = set()
    for i in sorted(history, key=_order, reverse=True):
        if len(items) >= n:
            break
        if i.item_id not in seen:
            seen.add(i.item_id)
            items.append(i.item_id)
    return items


def history_to_payload(history: Iterable[Interaction]) -> str:
    """The shopper's history for the stored profile payload: one JSON text (a list of
    interactions), which the store writes and reads many times faster than the same list as
    payload objects (bench/README.md)."""
    return jsontext.dumps([i.to_payload() for i in history])


def history_from_payload(obj: object) -> list[Interaction]:
    """Inverse of :func:`history_to_payload` (a list, as stored before, is read too); never
    raises.

    A malformed entry (or a payload that is not a list) is skipped rather than failing: losing one
    remembered interaction is better than a shopper whose events can no longer be processed.
    """
    if isinstance(obj, str):
        try:
            obj = jsontext.loads(obj)
        except (ValueError, RecursionError):
            return []
    if not isinstance(obj, list):
        return []
    history = []
    for entry in obj:
        try:
            history.append(Interaction.from_payload(entry))
        except (ValueError, TypeError, OverflowError):
            continue
    return history
