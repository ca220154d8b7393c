"""An independent reference for shopper recommendations, written from the documented rules with
plain numpy and dictionaries (it calls none of recstream's profile, statistics or ranking code).

Rules (README, "Recommendations"): a profile is the L2-normalised sum of item vectors weighted
by event type and halved every ``profile_half_life_hours`` before the shopper's last event;
popularity and co-occurrence are sums of event weights halved every
``popularity_half_life_hours``; a new interaction pairs with the shopper's last ``window``
distinct other items before it, the pair weighing the smaller of the two interactions' weights;
collaborative score = sum of co-occurrence with the shopper's ``window`` most recent items;
components are scaled to [0, 1]; score = sum of weight x component.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Event:
    event_id: str
    user_id: str
    item_id: str
    type: str
    at: datetime
    price: float | None


def parse(e: dict[str, Any]) -> Event:
    return Event(
        e["event_id"],
        e["user_id"],
        e["item_id"],
        e["type"],
        datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")),
        e.get("price"),
    )


def _halved(hours: float, half_life: float) -> float:
    return float(0.5 ** (hours / half_life))


def _hours(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / 3600


@dataclass
class Catalogue:
    vectors: dict[str, np.ndarray]
    prices: dict[str, float | None]
    in_stock: dict[str, bool]


def pair_events(
    events: list[Event], weights: dict[str, float], window: int
) -> list[tuple[str, str, float, datetime]]:
    """(item a, item b, pair weight, time) for every pairing of one shopper's events."""
    ordered = sorted(events, key=lambda e: (e.at, e.event_id))
    pairs = []
    for n, e in enumerate(ordered):
        seen: set[str] = set()
        for prev in reversed(ordered[:n]):
            if len(seen) >= window:
                break
            if prev.item_id == e.item_id or prev.item_id in seen:
                continue
            seen.add(prev.item_id)
            w = min(weights[e.type], weights[prev.type])
            if w > 0:
                pairs.append((e.item_id, prev.item_id, w, e.at))
    return pairs


def recommend(
    history: list[Event],
    everyone: list[Event],
    cat: Catalogue,
    s: Any,
) -> list[tuple[str, float, dict[str, float]]]:
    """The expected list for a shopper whose events are ``history``, given all shoppers' events
    that reached the item statistics (``everyone``)."""
    weights = s.behaviour_weights()
    ref = max(e.at for e in history)
    acc = np.zeros(len(next(iter(cat.vectors.values()))), dtype=np.float64)
    for e in history:
        if e.item_id in cat.vectors:
            w = weights[e.type] * _halved(max(0.0, _hours(ref, e.at)), s.profile_half_life_hours)
            acc += w * cat.vectors[e.item_id]
    norm = float(np.linalg.norm(acc))
    profile = acc / norm if norm > 0 else None

    logs = []
    for e in history:
        price = e.price if e.price is not None else cat.prices.get(e.item_id)
        if price is not None and price > 0:
            logs.append(math.log(price))
    preference = sum(logs) / len(logs) if logs else None
    exclude = {
        e.item_id
        for e in history
        if e.type == "purchase" and _hours(ref, e.at) <= s.rank_exclude_purchased_days * 24
    }

    pop: dict[str, float] = defaultdict(float)
    co: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    by_user: dict[str, list[Event]] = defaultdict(list)
    for e in everyone:
        pop[e.item_id] += weights[e.type] * _halved(_hours(ref, e.at), s.popularity_half_life_hours)
        by_user[e.user_id].append(e)
    for events in by_user.values():
        for a, b, w, at in pair_events(events, weights, s.cooccurrence_window):
            decayed = w * _halved(_hours(ref, at), s.popularity_half_life_hours)
            co[a][b] += decayed
            co[b][a] += decayed

    recent: list[str] = []
    for e in sorted(history, key=lambda e: (e.at, e.event_id), reverse=True):
        if e.item_id not in recent:
            recent.append(e.item_id)
    collaborative: dict[str, float] = defaultdict(float)
    for x in recent[: s.cooccurrence_window]:
        for y, w in co.get(x, {}).items():
            collaborative[y] += w

    if profile is not None:
        candidates = set(cat.vectors)
    else:  # cold start: only the popular and co-occurring items are candidates
        candidates = {i for i in cat.vectors if pop.get(i, 0) > 0 or collaborative.get(i, 0) > 0}
    eligible = sorted(i for i in candidates if i not in exclude and cat.in_stock[i])
    if not eligible:
        return []
    max_col = max(collaborative.get(i, 0.0) for i in eligible)
    max_pop = max(pop.get(i, 0.0) for i in eligible)
    out = []
    for i in eligible:
        sem = 0.0 if profile is None else max(0.0, min(1.0, float(profile @ cat.vectors[i])))
        col = collaborative.get(i, 0.0) / max_col if max_col > 0 else 0.0
        pp = pop.get(i, 0.0) / max_pop if max_pop > 0 else 0.0
        price = cat.prices.get(i)
        aff = 0.0
        if preference is not None and price is not None and price > 0:
            aff = math.exp(-((math.log(price) - preference) ** 2) / (2 * s.rank_price_sigma**2))
        # no model was trained: the learned component is 0 for every item
        comps = {
            "semantic": sem,
            "collaborative": col,
            "popularity": pp,
            "price": aff,
            "learned": 0.0,
        }
        score = (
            s.rank_weight_semantic * sem
            + s.rank_weight_collaborative * col
            + s.rank_weight_popularity * pp
            + s.rank_weight_price * aff
        )
        out.append((i, score, comps))
    out.sort(key=lambda t: (-t[1], t[0]))
    return out[: s.recommendations_n]


def trigger_events(
    users: list[str], live: list[dict[str, Any]], quiet: list[str], end: datetime, rng: Any
) -> list[dict[str, Any]]:
    """One view per shopper at ``end`` (views weigh 0 in these tests: they change no profile or
    statistic, but make every shopper's final list be computed after all else settled).
    Shoppers named ``u-cold-*`` view an item nobody touched: they have no usable history."""
    triggers = []
    for n, user in enumerate(users):
        target = rng.choice(quiet) if user.startswith("u-cold") else rng.choice(live)["item_id"]
        triggers.append(
            {
                "type": "view",
                "event_id": f"trigger-{n}",
                "occurred_at": end.isoformat().replace("+00:00", "Z"),
                "user_id": user,
                "item_id": target,
            }
        )
    return triggers


def ranked_vectors(store: Any, settings: Any) -> dict[str, np.ndarray]:
    """The stored items' vectors as shoppers are ranked on them (``RECSTREAM_RANK_LEXICAL``
    off): the model's part, its first ``hidden_size`` floats by the model's own config,
    normalised; the whole vector with the setting on."""
    from encoders.bert import model_dimension
    from stream.collections import ITEMS

    width = None if settings.rank_lexical else model_dimension(settings.model)
    out = {}
    for point in store.scroll(ITEMS, with_vectors=True):
        if point.vector is not None:
            part = np.asarray(point.vector, dtype=np.float64)[:width]
            out[point.key] = part / np.linalg.norm(part)
    return out


def assert_recommendations(
    settings: Any,
    got: dict[str, list[dict[str, Any]]],
    behaviour: list[dict[str, Any]],
    triggers: list[dict[str, Any]],
    items: list[dict[str, Any]],
    vectors: dict[str, np.ndarray],
    deleted: set[str],
) -> None:
    """Every shopper's published list equals the reference (ties aside); components add up to
    the score; bought, out-of-stock and deleted items never appear."""
    import pytest

    live = [i for i in items if i["item_id"] not in deleted]
    cat = Catalogue(
        vectors=vectors,
        prices={i["item_id"]: i.get("price") for i in live},
        in_stock={i["item_id"]: i.get("in_stock", True) for i in live},
    )
    everyone = [parse(e) for e in behaviour]
    by_user: dict[str, list[Event]] = defaultdict(list)
    for e in [*everyone, *map(parse, triggers)]:
        by_user[e.user_id].append(e)
    users = sorted(by_user)
    bought = {(e.user_id, e.item_id) for e in everyone if e.type == "purchase"}
    out_of_stock = {i["item_id"] for i in items if not i.get("in_stock", True)}
    weights = {
        "semantic": settings.rank_weight_semantic,
        "collaborative": settings.rank_weight_collaborative,
        "popularity": settings.rank_weight_popularity,
        "price": settings.rank_weight_price,
        "learned": settings.rank_weight_learned,
    }
    for user in users:
        have = got[user]
        want = recommend(by_user[user], everyone, cat, settings)
        assert len(have) == len(want) == settings.recommendations_n, user
        for position, (h, (w_id, w_score, w_comps)) in enumerate(zip(have, want, strict=True)):
            assert h["score"] == pytest.approx(w_score, abs=2e-6), (user, position)
            if h["item_id"] != w_id:  # only a tie may swap places
                tied = [s for i, s, _ in want if i == h["item_id"]]
                assert tied and tied[0] == pytest.approx(w_score, abs=2e-6), (user, position)
            else:
                for name, value in w_comps.items():
                    assert h["components"][name] == pytest.approx(value, abs=2e-6), (user, name)
            assert sum(weights[k] * v for k, v in h["components"].items()) == pytest.approx(
                h["score"], abs=1e-5
            )
            assert h["item_id"] not in deleted and h["item_id"] not in out_of_stock
            assert (user, h["item_id"]) not in bought
