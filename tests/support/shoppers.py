"""Synthetic shoppers with themed histories, for the recommender and tuner tests."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from stream.ranking.profile import Interaction

THEMES = ("garden", "kitchen", "desk", "toys")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def histories(users: int, seed: int = 4) -> dict[str, list[Interaction]]:
    """Shoppers who keep to a theme over 100 days, a few coming back late for new items."""
    rng = random.Random(seed)
    out = {}
    for u in range(users):
        theme = THEMES[u % len(THEMES)]
        picks = rng.sample(range(10), 6)
        events = [
            Interaction(
                f"u{u}-{k}",
                f"{theme}-{n}",
                rng.choice(("view", "purchase", "purchase")),
                T0 + timedelta(days=rng.uniform(0, 100)),
            )
            for k, n in enumerate(picks)
        ]
        out[f"u{u:03d}"] = sorted(events, key=lambda i: (i.at, i.event_id))
    return out
