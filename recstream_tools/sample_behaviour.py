"""Synthetic shopper behaviour over a catalogue, for the demo and tests. Pure and deterministic.

Each shopper has a favourite top-level category (and sometimes a second one) and browses it:
mostly views, some clicks, fewer add-to-carts and purchases, spread over a few days.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

_TYPES = ("view", "click", "add_to_cart", "purchase")
_TYPE_ODDS = (0.6, 0.2, 0.12, 0.08)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def sample_behaviour(
    items: list[dict[str, Any]],
    users: int = 60,
    seed: int = 7,
    start: datetime | None = None,
    events_per_user: tuple[int, int] = (4, 16),
) -> list[dict[str, Any]]:
    """Behaviour events (wire format, ``user.events``), in time order."""
    rng = random.Random(seed)
    start = start or datetime.fromisoformat("2026-11-20T08:00:00+00:00")
    by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        by_category[(item.get("categories") or ["Other"])[0]].append(item)
    categories = sorted(by_category)
    events: list[dict[str, Any]] = []
    for u in range(users):
        user_id = f"u-{u:05d}"
        liked = [rng.choice(categories)]
        if rng.random() < 0.3:
            liked.append(rng.choice(categories))
        moment = start + timedelta(minutes=rng.randint(0, 600))
        for n in range(rng.randint(*events_per_user)):
            item = rng.choice(by_category[rng.choice(liked)])
            kind = rng.choices(_TYPES, _TYPE_ODDS)[0]
            moment += timedelta(minutes=rng.randint(1, 240))
            event: dict[str, Any] = {
                "type": kind,
                "event_id": f"{user_id}-{n}",
                "occurred_at": _iso(moment),
                "user_id": user_id,
                "item_id": item["item_id"],
                "quantity": 1,
            }
            if kind == "purchase" and item.get("price") is not None:
                event["price"] = item["price"]
            events.append(event)
    events.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
    return events
