"""Item interaction statistics: decay, item activities (JSON, co-occurrence pairs and window),
applying activities (decayed sums, dedupe by watermark, bounds, order independence) and reading
them back."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.activity import ItemActivity
from schemas.source import source_position
from stream.ranking.profile import Interaction
from stream.ranking.stats import (
    DamagedStats,
    activities_for,
    apply_activity,
    cooccurrence,
    cooccurrence_at,
    decayed,
    fold_activities,
    half_lives,
    popularity_at,
    popularity_key,
)

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
WEIGHTS = {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0}
HALF_LIFE = 168.0


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def ix(event_id: str, item_id: str, kind: str = "view", hours: float = 0.0) -> Interaction:
    return Interaction(event_id, item_id, kind, at(hours))


def act(
    offset: int,
    weight: float = 1.0,
    hours: float = 0.0,
    co: dict[str, float] | None = None,
    partition: int = 0,
) -> ItemActivity:
    """An activity of sku-1 from ``user.events/<partition>/<offset>``."""
    source = f"user.events/{partition}/{offset}#sku-1"
    return ItemActivity("sku-1", weight, at(hours), source, co or {})


# --- decay ----------------------------------------------------------------------------------


def test_decayed_halves_per_half_life_and_grows_backwards() -> None:
    """value x 0.5 ** (hours / half-life): half after one half-life, double one half-life before."""
    assert decayed(8.0, at(0), at(168), HALF_LIFE) == pytest.approx(4.0)
    assert decayed(8.0, at(0), at(84), HALF_LIFE) == pytest.approx(8.0 / math.sqrt(2))
    assert decayed(8.0, at(0), at(-168), HALF_LIFE) == pytest.approx(16.0)
    assert decayed(8.0, at(3), at(3), HALF_LIFE) == 8.0


# --- ItemActivity JSON ----------------------------------------------------------------------


def test_item_activity_round_trips_through_json() -> None:
    """to_json / from_json restore the activity, co-occurrence included."""
    a = ItemActivity("sku-1", 8.0, at(1.5), "user.events/3/1207#sku-1", {"sku-2": 1.0})
    assert ItemActivity.from_json(a.to_json()) == a
    assert json.loads(a.to_json())["at"] == "2026-11-22T11:30:00+00:00"


VALID: dict[str, Any] = {
    "item_id": "sku-1",
    "weight": 1.0,
    "at": "2026-11-22T10:00:00+00:00",
    "source": "user.events/0/1#sku-1",
    "co": {},
}


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b"null",
        json.dumps({k: v for k, v in VALID.items() if k != "source"}).encode(),
        json.dumps({**VALID, "item_id": ""}).encode(),
        json.dumps({**VALID, "weight": -1}).encode(),
        json.dumps({**VALID, "weight": True}).encode(),
        json.dumps({**VALID, "weight": "heavy"}).encode(),
        json.dumps({**VALID, "at": "2026-11-22T10:00:00"}).encode(),
        json.dumps({**VALID, "at": "soon"}).encode(),
        json.dumps({**VALID, "co": [1]}).encode(),
        json.dumps({**VALID, "co": {"sku-2": None}}).encode(),
        b'{"item_id": "sku-1", "weight": NaN, "at": "2026-11-22T10:00:00+00:00", "source": "s"}',
        json.dumps({**VALID, "source": "no-offset"}).encode(),
        b'{"item_id": "sku-1", "co": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        json.dumps({**VALID, "weight": 10**400}).encode(),
        json.dumps({**VALID, "co": {"sku-2": 10**400}}).encode(),
        json.dumps({**VALID, "source": "user.events/0/x#sku-1"}).encode(),
        json.dumps({**VALID, "source": "user.events/0/" + "9" * 400 + "#sku-1"}).encode(),
    ],
)
def test_item_activity_from_garbage_raises_value_error(raw: bytes) -> None:
    """Anything but a well-formed activity raises ValueError (and nothing else)."""
    with pytest.raises(ValueError):
        ItemActivity.from_json(raw)


# --- activities_for -------------------------------------------------------------------------


def test_activities_pair_the_event_with_earlier_items_at_the_smaller_weight() -> None:
    """The event's item gets its type weight and co = {earlier item: min of the two weights};
    every partner gets weight 0 and the same pair back; sources are unique per item."""
    previous = [ix("e-1", "A", "purchase", 1), ix("e-2", "B", "view", 2)]
    event = ix("e-3", "C", "add_to_cart", 3)
    acts = activities_for(event, previous, WEIGHTS, 10, "user.events/0/7")
    assert acts == [
        ItemActivity("C", 4.0, at(3), "user.events/0/7#C", {"B": 1.0, "A": 4.0}),
        ItemActivity("B", 0.0, at(3), "user.events/0/7#B", {"C": 1.0}),
        ItemActivity("A", 0.0, at(3), "user.events/0/7#A", {"C": 4.0}),
    ]


def test_activities_window_counts_distinct_items_and_skips_the_events_own_item() -> None:
    """Only the last `window` distinct other items pair; an item's latest interaction speaks."""
    previous = [
        ix("e-1", "A", "purchase", 1),  # beyond the window
        ix("e-2", "B", "purchase", 2),  # superseded by B's later view
        ix("e-3", "X", "view", 3),  # the event's own item: never its own partner
        ix("e-4", "C", "click", 4),
        ix("e-5", "B", "view", 5),
    ]
    event = ix("e-6", "X", "purchase", 6)
    own = activities_for(event, previous, WEIGHTS, 2, "s")[0]
    assert own.co == {"B": 1.0, "C": 2.0}
    assert activities_for(event, previous, WEIGHTS, 0, "s") == [
        ItemActivity("X", 8.0, at(6), "s#X", {})
    ]


def test_activities_pair_only_with_interactions_before_the_event() -> None:
    """previous may hold the event itself and later ones: only earlier interactions pair, so a
    pair comes from its later event only."""
    a, b = ix("e-1", "A", "view", 1), ix("e-2", "B", "view", 2)
    merged = [a, b]
    assert activities_for(a, merged, WEIGHTS, 10, "s")[0].co == {}
    assert activities_for(b, merged, WEIGHTS, 10, "s")[0].co == {"A": 1.0}
    # equal times: event id breaks the tie
    c, d = ix("e-3", "C", "view", 3), ix("e-4", "D", "view", 3)
    assert activities_for(d, [c, d], WEIGHTS, 10, "s")[0].co == {"C": 1.0}
    assert activities_for(c, [c, d], WEIGHTS, 10, "s")[0].co == {}


def test_pairs_that_weigh_nothing_are_left_out() -> None:
    """A pair with a zero-weight side is no evidence: no co entry and no partner activity."""
    weights = {**WEIGHTS, "view": 0.0}
    acts = activities_for(ix("e-2", "B", "click", 2), [ix("e-1", "A", "view", 1)], weights, 5, "s")
    assert acts == [ItemActivity("B", 2.0, at(2), "s#B", {})]


def test_cooccurrence_built_from_a_session_is_symmetric() -> None:
    """Applying every activity of a shopper's session gives co[a][b] == co[b][a]."""
    session = [
        ix("e-1", "A", "view", 0),
        ix("e-2", "B", "click", 1),
        ix("e-3", "C", "purchase", 5),
        ix("e-4", "A", "add_to_cart", 9),
        ix("e-5", "D", "view", 20),
    ]
    stats: dict[str, dict[str, Any]] = {}
    for k, event in enumerate(session):
        for a in activities_for(event, session[:k], WEIGHTS, 2, f"user.events/0/{k}"):
            applied = apply_activity(stats.get(a.item_id), a, HALF_LIFE, 100)
            assert applied is not None
            stats[a.item_id] = applied
    ref = at(20)
    co = {item: cooccurrence_at(s, ref, HALF_LIFE) for item, s in stats.items()}
    pairs = {(x, y) for x in co for y in co[x]}
    assert pairs == {(y, x) for x, y in pairs}
    for x, y in pairs:
        assert co[x][y] == pytest.approx(co[y][x], rel=1e-12)
    # by hand: D (view, w 1) paired with the last 2 distinct items before it, A and C
    assert set(co["D"]) == {"A", "C"}
    assert co["D"]["C"] == pytest.approx(1.0)


# --- apply_activity -------------------------------------------------------------------------


def test_first_activity_creates_a_json_safe_payload() -> None:
    """No stats yet: pop = weight, co as given, ref = the activity's time, upto = its offset."""
    payload = apply_activity(None, act(1, 4.0, 2, {"sku-2": 1.0}), HALF_LIFE, 10)
    assert payload == {
        "item_id": "sku-1",
        "pop": 4.0,
        "co": {"sku-2": 1.0},
        "ref": "2026-11-22T12:00:00+00:00",
        "upto": {"user.events/0": 1},
    }
    assert json.loads(json.dumps(payload)) == payload


def test_a_later_activity_decays_the_old_values_to_its_time() -> None:
    """ref moves to the later activity: old pop and co are decayed by the elapsed half-lives."""
    first = apply_activity(None, act(1, 8.0, 0, {"sku-2": 2.0}), HALF_LIFE, 10)
    second = apply_activity(first, act(2, 1.0, 168, {"sku-2": 1.0, "sku-3": 1.0}), HALF_LIFE, 10)
    assert second is not None
    assert second["ref"] == at(168).isoformat()
    assert second["pop"] == pytest.approx(8.0 / 2 + 1.0)
    assert second["co"] == pytest.approx({"sku-2": 2.0 / 2 + 1.0, "sku-3": 1.0})


def test_an_earlier_activity_is_decayed_to_the_current_ref_which_stays() -> None:
    """An activity older than ref adds its decayed weight; ref does not move back."""
    first = apply_activity(None, act(1, 8.0, 336), HALF_LIFE, 10)
    second = apply_activity(first, act(2, 4.0, 0), HALF_LIFE, 10)
    assert second is not None
    assert second["ref"] == at(336).isoformat()
    assert second["pop"] == pytest.approx(8.0 + 4.0 / 4)


def test_an_applied_activity_is_not_counted_twice() -> None:
    """An activity at or below its partition's watermark returns None (nothing to write), however
    many activities came after it; another partition's offsets are its own."""
    once = apply_activity(None, act(5, 8.0), HALF_LIFE, 10)
    assert apply_activity(once, act(5, 8.0), HALF_LIFE, 10) is None
    later = once
    for offset in range(6, 2_000):
        later = apply_activity(later, act(offset, 1.0, 1), HALF_LIFE, 10)
    assert apply_activity(later, act(5, 8.0), HALF_LIFE, 10) is None
    assert apply_activity(later, act(1_500, 8.0), HALF_LIFE, 10) is None
    other = apply_activity(later, act(5, 8.0, partition=1), HALF_LIFE, 10)
    assert other is not None and other["upto"] == {"user.events/0": 1_999, "user.events/1": 5}


def test_only_the_strongest_max_co_partners_are_kept_ties_by_item_id() -> None:
    """co keeps the max_co largest entries; among equals the smaller item id wins."""
    payload = apply_activity(
        None, act(1, 1.0, 0, {"d": 1.0, "c": 3.0, "b": 2.0, "a": 2.0}), HALF_LIFE, 3
    )
    assert payload is not None
    assert payload["co"] == {"c": 3.0, "a": 2.0, "b": 2.0}


def test_the_dedupe_memory_is_one_offset_per_partition() -> None:
    """However many activities an item takes, its payload remembers one offset per input
    partition (the old list of sources grew to 1,000 entries per item)."""
    stats: dict[str, Any] | None = None
    for k in range(3_000):
        stats = apply_activity(stats, act(k, 1.0, 0, partition=k % 4), HALF_LIFE, 10)
    assert stats is not None
    assert stats["upto"] == {f"user.events/{p}": 2_996 + p for p in range(4)}
    assert stats["pop"] == pytest.approx(3_000)


def test_activity_of_another_item_is_refused() -> None:
    """Stats of one item cannot take another item's activity."""
    stats = apply_activity(None, act(1), HALF_LIFE, 10)
    other = ItemActivity("sku-2", 1.0, at(0), "user.events/0/2#sku-2")
    with pytest.raises(ValueError):
        apply_activity(stats, other, HALF_LIFE, 10)


activity_sets = st.lists(
    st.tuples(
        st.floats(0, 10, allow_nan=False),
        st.floats(-2_000, 2_000, allow_nan=False),
        st.dictionaries(st.sampled_from("abcdef"), st.floats(0, 10, allow_nan=False), max_size=3),
        st.integers(0, 2),
    ),
    min_size=1,
    max_size=30,
).map(lambda rows: [act(k, w, h, co, p) for k, (w, h, co, p) in enumerate(rows)])


def _apply_all(activities: list[ItemActivity], max_co: int = 100) -> dict[str, Any]:
    stats: dict[str, Any] | None = None
    for a in activities:
        stats = apply_activity(stats, a, HALF_LIFE, max_co) or stats
    assert stats is not None
    return stats


def _interleaved(activities: list[ItemActivity], rnd: Any) -> list[ItemActivity]:
    """Each partition's activities in offset order, the partitions interleaved at random, and
    replays (a redone batch: activities already delivered) mixed in after their originals."""
    by_partition: dict[str, list[ItemActivity]] = {}
    for a in activities:
        by_partition.setdefault(source_position(a.source)[0], []).append(a)
    out: list[ItemActivity] = []
    while any(by_partition.values()):
        part = rnd.choice([p for p, left in by_partition.items() if left])
        out.append(by_partition[part].pop(0))
        if rnd.random() < 0.3:
            out.append(rnd.choice(out))
    return out


@given(activity_sets, st.randoms(use_true_random=False))
def test_apply_is_independent_of_interleaving_and_ignores_replays(
    activities: list[ItemActivity], rnd: Any
) -> None:
    """Partitions interleaved in any order, each in its offset order, with replays mixed in,
    give the same pop and co (to 1e-9 relative) as the plain sum of every activity decayed to
    the latest time."""
    stats = _apply_all(_interleaved(activities, rnd))
    ref = max(a.at for a in activities)
    hours = [(ref - a.at).total_seconds() / 3600 for a in activities]
    expected_pop = math.fsum(
        a.weight * 0.5 ** (h / HALF_LIFE) for a, h in zip(activities, hours, strict=True)
    )
    expected_co: dict[str, float] = {}
    for a, h in zip(activities, hours, strict=True):
        for k, v in a.co.items():
            expected_co[k] = expected_co.get(k, 0.0) + v * 0.5 ** (h / HALF_LIFE)
    assert stats["ref"] == ref.isoformat()
    assert stats["pop"] == pytest.approx(expected_pop, rel=1e-9, abs=1e-300)
    assert stats["co"] == pytest.approx(expected_co, rel=1e-9, abs=1e-300)
    assert _apply_all(_interleaved(activities, rnd))["pop"] == pytest.approx(
        stats["pop"], rel=1e-9, abs=1e-300
    )


# --- reading stats --------------------------------------------------------------------------


def test_popularity_and_cooccurrence_are_decayed_to_the_asked_time() -> None:
    """popularity_at / cooccurrence_at decay the stored values from ref to the given time."""
    stats = apply_activity(None, act(1, 8.0, 0, {"sku-2": 4.0}), HALF_LIFE, 10)
    assert popularity_at(stats, at(336), HALF_LIFE) == pytest.approx(2.0)
    assert cooccurrence_at(stats, at(168), HALF_LIFE) == pytest.approx({"sku-2": 2.0})
    assert popularity_at(stats, at(0), HALF_LIFE) == 8.0


def test_no_stats_read_as_nothing() -> None:
    """Without stats an item has popularity 0 and no co-occurring items."""
    assert popularity_at(None, at(0), HALF_LIFE) == 0.0
    assert cooccurrence_at(None, at(0), HALF_LIFE) == {}


def test_popularity_key_orders_like_popularity_at_a_common_time() -> None:
    """Two items with popularity measured at different times sort by their popularity at one
    shared time; an item without popularity has no key."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    older = {"pop": 8.0, "ref": t0.isoformat()}  # 8 at t0 -> 4 one half-life later
    newer = {"pop": 5.0, "ref": (t0 + timedelta(hours=10)).isoformat()}
    ka, kb = popularity_key(older, 10.0), popularity_key(newer, 10.0)
    assert ka is not None and kb is not None and kb > ka
    assert kb - ka == pytest.approx(math.log(5.0) - math.log(4.0))
    assert popularity_key(None, 10.0) is None
    assert popularity_key({"pop": 0.0, "ref": t0.isoformat()}, 10.0) is None


def test_a_value_grown_past_the_largest_float_is_infinite_not_an_error() -> None:
    """Counted ~1,100 half-lives before it was seen, a value is +-inf (no OverflowError);
    half_lives gives the exponent itself, finite, for callers that work in log space."""
    far = at(-1_100 * HALF_LIFE)
    assert decayed(3.0, at(0), far, HALF_LIFE) == math.inf
    assert decayed(-3.0, at(0), far, HALF_LIFE) == -math.inf
    assert decayed(3.0, far, at(0), HALF_LIFE) == 0.0
    assert half_lives(at(0), far, HALF_LIFE) == pytest.approx(-1_100.0)
    year_1, year_9999 = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)
    assert decayed(1.0, year_9999, year_1, 1.0) == math.inf


@pytest.mark.parametrize(
    "field, value",
    [
        ("upto", "{not json"),
        ("upto", '{"user.events/0": "seven"}'),
        ("upto", "[1, 2]"),
        ("upto", 7),
        ("co", '{"sku-2": "heavy"}'),
        ("co", '{"sku-2": Infinity}'),
        ("co", "[[[[" * 5_000),
        ("pop", "lots"),
        ("pop", None),
        ("ref", "yesterday"),
        ("item_id", "sku-9"),
        ("seen", "{not json"),
        # stored as one text (stored_stats)
        ("stats", "{not json"),
        ("stats", "[1, 2]"),
        ("stats", {"co": {"sku-2": "heavy"}}),
        ("stats", {"ref": "yesterday"}),
        ("stats", {"item_id": "sku-9"}),
    ],
)
def test_a_stored_record_that_cannot_be_read_raises_damaged_stats(field: str, value: Any) -> None:
    """A record with a field that is not JSON, of the wrong type or not finite, or another
    item's, raises DamagedStats (a ValueError), the one error the item-stats consumer answers
    by starting the item afresh; reading its co-occurrence raises it too."""
    record: dict[str, Any] = {
        "item_id": "sku-1",
        "pop": 1.0,
        "co": '{"sku-2":1.0}',
        "ref": T0.isoformat(),
        "upto": "{}",
    }
    if field == "seen":
        del record["upto"]
    if field == "stats":  # the record as one text, or that text with a field changed
        changed = value if isinstance(value, str) else {**record, **value}
        record = {"stats": changed if isinstance(changed, str) else json.dumps(changed)}
    else:
        record[field] = value
    with pytest.raises(DamagedStats):
        fold_activities(record, [act(1)], HALF_LIFE, 10)
    if field in ("co", "ref") or (field == "stats" and "item_id" not in value):
        with pytest.raises(DamagedStats):
            cooccurrence(record)
