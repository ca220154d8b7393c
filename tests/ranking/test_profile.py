"""Shopper histories and profiles: interactions and their payloads, merging (dedupe, bounds,
order independence), decayed weights, profile vectors, price preference, recent purchases and
recent items."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.behaviour import parse_behaviour_event
from stream.ranking.profile import (
    Interaction,
    history_from_payload,
    history_to_payload,
    interaction_weight,
    merge_history,
    price_preference,
    profile_vector,
    recent_items,
    recently_purchased,
)
from stream.store.base import Vector

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
WEIGHTS = {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0}
HALF_LIFE = 72.0


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def ix(
    event_id: str,
    item_id: str = "sku-1",
    kind: str = "view",
    hours: float = 0.0,
    *,
    quantity: int = 1,
    price: float | None = None,
) -> Interaction:
    return Interaction(event_id, item_id, kind, at(hours), quantity, price)


def unit(*values: float) -> Vector:
    v = np.asarray(values, dtype=np.float64)
    return (v / np.linalg.norm(v)).astype(np.float32)


def assert_direction(actual: Vector | None, *expected: float) -> None:
    """``actual`` is a unit vector pointing along ``expected`` (normalised here, with numpy)."""
    assert actual is not None
    want = np.asarray(expected, dtype=np.float64)
    assert np.allclose(actual, want / np.linalg.norm(want), atol=1e-6), (actual, want)


# --- Interaction and payloads ---------------------------------------------------------------


def test_interaction_payload_round_trips_through_json() -> None:
    """to_payload is JSON-safe (``at`` as ISO text) and from_payload restores the interaction."""
    i = ix("e-1", "sku-9", "purchase", 5.5, quantity=3, price=12.5)
    payload = json.loads(json.dumps(i.to_payload()))
    assert payload["at"] == "2026-11-22T15:30:00+00:00"
    assert Interaction.from_payload(payload) == i


def test_interaction_of_a_user_event_keeps_its_fields() -> None:
    """Interaction.of copies a parsed user.events message into a history entry."""
    body = {
        "type": "purchase",
        "event_id": "e-9",
        "occurred_at": "2026-11-22T10:05:00Z",
        "user_id": "u-42",
        "item_id": "sku-1",
        "quantity": 2,
        "price": 9.5,
    }
    event = parse_behaviour_event(b"u-42", json.dumps(body).encode())
    assert Interaction.of(event) == Interaction(
        "e-9", "sku-1", "purchase", datetime(2026, 11, 22, 10, 5, tzinfo=UTC), 2, 9.5
    )


GOOD: dict[str, Any] = {"event_id": "e", "item_id": "i", "type": "view", "at": T0.isoformat()}


@pytest.mark.parametrize(
    "bad",
    [
        {k: v for k, v in GOOD.items() if k != "event_id"},
        {**GOOD, "item_id": ""},
        {**GOOD, "type": 3},
        {**GOOD, "at": "yesterday"},
        {**GOOD, "at": "2026-11-22T10:00:00"},  # naive
        {**GOOD, "at": 1_700_000_000},
        {**GOOD, "quantity": 0},
        {**GOOD, "quantity": True},
        {**GOOD, "quantity": "2"},
        {**GOOD, "price": -1.0},
        {**GOOD, "price": "cheap"},
        {**GOOD, "price": float("nan")},
    ],
)
def test_from_payload_rejects_malformed_entries(bad: dict[str, Any]) -> None:
    """A payload with a missing, empty or mistyped field raises ValueError."""
    with pytest.raises(ValueError):
        Interaction.from_payload(bad)


def test_from_payload_defaults_quantity_and_price() -> None:
    """quantity defaults to 1 and price to None, as in the event schema."""
    assert Interaction.from_payload(GOOD) == Interaction("e", "i", "view", T0)


def test_history_payload_round_trip_and_malformed_entries_are_skipped() -> None:
    """history_from_payload restores a history and skips (never raises on) malformed entries."""
    history = [ix("e-1", hours=0), ix("e-2", "sku-2", "purchase", 1, price=3.0)]
    payload = history_to_payload(history)
    assert isinstance(payload, str)  # one JSON text in the store
    assert history_from_payload(json.loads(json.dumps(payload))) == history
    entries = json.loads(payload)
    noisy = [entries[0], {"event_id": "x"}, "junk", None, 7, entries[1]]
    assert history_from_payload(noisy) == history  # a list, as stored before
    assert history_from_payload(json.dumps(noisy)) == history
    assert history_from_payload("[" * 100_000) == []  # deep or broken JSON: nothing
    assert history_from_payload("{not json") == []
    assert history_from_payload({"not": "a list"}) == []
    assert history_from_payload(None) == []


# --- merge_history --------------------------------------------------------------------------


def test_merge_sorts_by_time_then_event_id_and_reports_added() -> None:
    """The merged history is sorted by (at, event_id); added lists only the new events."""
    old = [ix("e-5", hours=5)]
    new = [ix("e-9", hours=1), ix("e-2", hours=1), ix("e-0", hours=7)]
    merged, added = merge_history(old, new, 10)
    assert [i.event_id for i in merged] == ["e-2", "e-9", "e-5", "e-0"]
    assert [i.event_id for i in added] == ["e-2", "e-9", "e-0"]


def test_merge_skips_known_event_ids_and_duplicates_within_the_batch() -> None:
    """An event id already in history, or repeated within new, is not added again."""
    old = [ix("e-1", hours=1)]
    new = [ix("e-1", hours=1), ix("e-2", hours=2), ix("e-2", hours=2)]
    merged, added = merge_history(old, new, 10)
    assert [i.event_id for i in merged] == ["e-1", "e-2"]
    assert [i.event_id for i in added] == ["e-2"]


def test_merge_keeps_the_newest_max_len_and_does_not_report_what_fell_off() -> None:
    """Only the newest max_len survive; a new event too old to fit is not reported as added."""
    old = [ix(f"e-{h}", hours=h) for h in (2, 3, 4)]
    merged, added = merge_history(old, [ix("e-1", hours=1), ix("e-5", hours=5)], 3)
    assert [i.event_id for i in merged] == ["e-3", "e-4", "e-5"]
    assert [i.event_id for i in added] == ["e-5"]
    assert merge_history(old, [ix("e-6", hours=6)], 0) == ([], [])


def test_merging_the_same_events_twice_changes_nothing() -> None:
    """A replayed batch leaves the history as it was and reports nothing added."""
    batch = [ix("e-1", hours=1), ix("e-2", "sku-2", hours=2)]
    once, _ = merge_history([], batch, 5)
    twice, added = merge_history(once, batch, 5)
    assert twice == once
    assert added == []


events = st.lists(
    st.tuples(st.integers(0, 20), st.sampled_from(["a", "b", "c"])), max_size=25, unique=True
).map(lambda rows: [ix(f"e-{h}-{s}", s, hours=h) for h, s in rows])


@given(events, st.randoms(use_true_random=False), st.integers(1, 8), st.integers(1, 4))
def test_merge_is_independent_of_arrival_order_and_batching(
    all_events: list[Interaction], rnd: Any, max_len: int, batches: int
) -> None:
    """Merging events in any order and any split, replays included, gives the same history as
    merging them all at once; each event is reported added at most once, and every event in the
    final history was reported."""
    stream = all_events + rnd.sample(all_events, len(all_events) // 2)  # some replays
    rnd.shuffle(stream)
    cuts = sorted(rnd.randint(0, len(stream)) for _ in range(batches - 1))
    history: list[Interaction] = []
    reported: list[str] = []
    for lo, hi in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        history, added = merge_history(history, stream[lo:hi], max_len)
        reported += [i.event_id for i in added]
    expected = sorted(all_events, key=lambda i: (i.at, i.event_id))[-max_len:]
    assert history == expected
    assert len(reported) == len(set(reported))
    assert {i.event_id for i in history} <= set(reported)


# --- weights and profiles -------------------------------------------------------------------


def test_interaction_weight_halves_every_half_life_and_ignores_quantity() -> None:
    """weight = type weight x 0.5 ** (age / half-life); quantity does not multiply it."""
    purchase = ix("e", kind="purchase", hours=0, quantity=10)
    assert interaction_weight(purchase, at(72), WEIGHTS, HALF_LIFE) == pytest.approx(4.0)
    assert interaction_weight(purchase, at(36), WEIGHTS, HALF_LIFE) == pytest.approx(8 / 2**0.5)
    assert interaction_weight(purchase, at(0), WEIGHTS, HALF_LIFE) == 8.0


def test_interaction_after_the_reference_counts_as_new_and_unknown_types_as_nothing() -> None:
    """A future interaction has age 0; a type without a weight weighs 0."""
    assert interaction_weight(ix("e", kind="click", hours=5), at(0), WEIGHTS, HALF_LIFE) == 2.0
    assert interaction_weight(ix("e", kind="wishlist"), at(0), WEIGHTS, HALF_LIFE) == 0.0


def test_profile_of_a_single_interaction_is_the_item_vector() -> None:
    """One interaction: the profile is that item's (unit) vector."""
    v = unit(0.2, -0.5, 0.7, 0.1)
    profile = profile_vector([ix("e", "sku-1", "view")], {"sku-1": v}, WEIGHTS, HALF_LIFE)
    assert profile is not None
    assert profile.dtype == np.float32
    assert_direction(profile, *v.tolist())


@pytest.mark.parametrize(
    ("purchase_hours", "purchase_weight"),
    [(-72.0, 4.0), (-216.0, 1.0), (-288.0, 0.5), (0.0, 8.0)],
)
def test_an_older_purchase_counts_against_a_newer_view_as_the_half_life_says(
    purchase_hours: float, purchase_weight: float
) -> None:
    """Profile = normalised (view weight x A + decayed purchase weight x B), reference = latest."""
    a, b = unit(1, 0, 0), unit(0, 1, 0)
    history = [ix("v", "A", "view", 0.0), ix("p", "B", "purchase", purchase_hours)]
    profile = profile_vector(history, {"A": a, "B": b}, WEIGHTS, HALF_LIFE)
    # the view is the latest (age 0, weight 1); the purchase's 8 halves per 72 h of age
    assert_direction(profile, 1.0, purchase_weight, 0.0)


def test_a_purchase_outweighs_an_older_view_as_the_half_life_says() -> None:
    """A view 72 h before a purchase weighs 1 x 0.5 against the purchase's 8."""
    a, b = unit(1, 0), unit(0, 1)
    history = [ix("v", "A", "view", 0.0), ix("p", "B", "purchase", 72.0)]
    profile = profile_vector(history, {"A": a, "B": b}, WEIGHTS, HALF_LIFE)
    assert_direction(profile, 0.5, 8.0)


def test_unknown_items_are_skipped_and_count_once_their_vector_exists() -> None:
    """An item without a vector is left out; given its vector later, it counts."""
    a, x = unit(1, 0, 0), unit(0, 0, 1)
    history = [ix("e-1", "A", "view", 0.0), ix("e-2", "X", "click", 0.0)]
    without = profile_vector(history, {"A": a}, WEIGHTS, HALF_LIFE)
    assert_direction(without, 1.0, 0.0, 0.0)
    with_x = profile_vector(history, {"A": a, "X": x}, WEIGHTS, HALF_LIFE)
    assert_direction(with_x, 1.0, 0.0, 2.0)  # view weight 1 x A + click weight 2 x X


def test_profile_does_not_change_when_the_whole_history_shifts_in_time() -> None:
    """The reference time comes from the data: shifting every interaction changes nothing."""
    vectors = {"A": unit(1, 2, 0), "B": unit(0, 1, 3)}
    history = [ix("e-1", "A", "purchase", 0.0), ix("e-2", "B", "view", 50.0)]
    shifted = [
        Interaction(i.event_id, i.item_id, i.type, i.at + timedelta(days=400)) for i in history
    ]
    original = profile_vector(history, vectors, WEIGHTS, HALF_LIFE)
    assert original is not None
    assert_direction(profile_vector(shifted, vectors, WEIGHTS, HALF_LIFE), *original.tolist())


@pytest.mark.parametrize(
    ("history", "weights"),
    [
        ([], WEIGHTS),
        ([ix("e", "unknown")], WEIGHTS),
        ([ix("e", "A", "view")], {**WEIGHTS, "view": 0.0}),
        ([ix("e-1", "A", "view"), ix("e-2", "MINUS_A", "view")], WEIGHTS),
    ],
    ids=["empty", "all-unknown", "zero-weights", "zero-norm"],
)
def test_profile_is_none_when_nothing_usable_remains(
    history: list[Interaction], weights: dict[str, float]
) -> None:
    """No history, only unknown items, only zero weights or a zero sum: no profile."""
    a = unit(1, 0)
    assert profile_vector(history, {"A": a, "MINUS_A": -a}, weights, HALF_LIFE) is None


# --- price, purchases, recent items ---------------------------------------------------------


def test_price_preference_is_the_mean_log_price_preferring_the_interactions_own_price() -> None:
    """Mean of ln(price): the interaction's own price, else the item's; unknown or 0 skipped."""
    history = [
        ix("e-1", "A", price=10.0),  # own price wins over the item's 99
        ix("e-2", "B"),  # the item's price, 40
        ix("e-3", "C"),  # no price anywhere: skipped
        ix("e-4", "D", price=0.0),  # free: no log, skipped
    ]
    prices = {"A": 99.0, "B": 40.0, "C": None, "D": 5.0}
    assert price_preference(history, prices) == pytest.approx((math.log(10) + math.log(40)) / 2)


def test_price_preference_is_none_without_a_known_price() -> None:
    """No positive price known: None."""
    assert price_preference([], {}) is None
    assert price_preference([ix("e", "A")], {"A": None}) is None


def test_recently_purchased_uses_an_inclusive_window_of_purchases_only() -> None:
    """Purchases no older than window_days count (the boundary included); views never do."""
    ref = at(0)
    history = [
        ix("e-1", "edge", "purchase", -30 * 24),  # exactly 30 days: inside
        ix("e-2", "old", "purchase", -30 * 24 - 1),  # 30 days and an hour: outside
        ix("e-3", "viewed", "view", -1),
        ix("e-4", "later", "purchase", 5),  # after ref: bought all the same
    ]
    assert recently_purchased(history, ref, 30.0) == {"edge", "later"}


def test_recently_purchased_with_a_zero_window_is_empty() -> None:
    """window_days == 0 switches the exclusion off."""
    assert recently_purchased([ix("e", "A", "purchase", 0)], at(0), 0.0) == set()


def test_recently_purchased_compares_instants_across_time_zones() -> None:
    """Times in other zones are compared as instants."""
    cet = timezone(timedelta(hours=1))
    bought = Interaction("e", "A", "purchase", datetime(2026, 11, 22, 11, 0, tzinfo=cet))
    assert recently_purchased([bought], T0 + timedelta(days=1), 1.0) == {"A"}


def test_recently_purchased_with_a_window_reaching_before_year_one_holds_every_purchase() -> None:
    """A shopper whose last event is in January of year 1 (valid), or a window of a billion
    days: the window reaches before datetime's range, so every purchase is in it, no error."""
    first = datetime(1, 1, 2, tzinfo=UTC)
    history = [Interaction("e", "A", "purchase", first), Interaction("v", "B", "view", first)]
    assert recently_purchased(history, first, 30.0) == {"A"}
    assert recently_purchased(history, T0, 1e12) == {"A"}


def test_recent_items_are_distinct_most_recent_first_and_bounded() -> None:
    """The last n distinct items, newest first, whatever the input order."""
    history = [
        ix("e-3", "C", hours=3),
        ix("e-1", "A", hours=1),
        ix("e-4", "A", hours=4),
        ix("e-2", "B", hours=2),
    ]
    assert recent_items(history, 10) == ["A", "C", "B"]
    assert recent_items(history, 2) == ["A", "C"]
    assert recent_items(history, 0) == []
