"""Folding an item's batch of activities at once (fold_activities, fold_item_activities) gives
what apply_activity gives one activity at a time: the watermark per input partition, the decay to
the latest time, the cut to the max_co strongest partners (ties by item id) after every activity."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from schemas.activity import ItemActivity
from stream.behaviour.item_stats import fold_item_activities
from stream.ranking.stats import apply_activity, fold_activities, popularity_key, stored_stats

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
ITEM = "sku-1"
PARTNERS = [ITEM, "a", "b", "c", "d", "e", "f", "g", "h"]  # the item itself is never a partner
REL = 1e-9


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def act(
    partition: int, offset: int, weight: float, hours: float, co: dict[str, float]
) -> ItemActivity:
    return ItemActivity(ITEM, weight, at(hours), f"user.events/{partition}/{offset}#{ITEM}", co)


def one_at_a_time(
    stats: dict[str, Any] | None, activities: list[ItemActivity], half_life: float, max_co: int
) -> tuple[dict[str, Any] | None, int, bool]:
    """apply_activity in turn: the payload, how many applied, and whether any cut was a near
    tie (the partners at both sides of it within float rounding, where rounding may pick)."""
    current, applied, near_tie = stats, 0, False
    for a in activities:
        new = apply_activity(current, a, half_life, max_co)
        if new is None:
            continue
        uncut = apply_activity(current, a, half_life, 10**9)
        assert uncut is not None
        values = sorted(uncut["co"].values(), reverse=True)
        if 0 < max_co < len(values):
            kept, dropped = values[max_co - 1], values[max_co]
            near_tie |= kept != 0 and kept - dropped <= REL * kept
        current, applied = new, applied + 1
    return (current if applied else None), applied, near_tie


weights = st.one_of(st.just(0.0), st.sampled_from([1.0, 2.0, 4.0, 8.0]), st.floats(0.01, 10))
partner_weights = st.dictionaries(st.sampled_from(PARTNERS), weights, max_size=4)
rows = st.lists(
    st.tuples(
        st.integers(0, 2),  # input partition
        st.integers(0, 12),  # offset: at or below the watermark is a replay
        weights,
        st.floats(-300, 300),  # hours: out of order, back and forth
        partner_weights,
    ),
    max_size=25,
)


@st.composite
def stored(draw: st.DrawFn) -> dict[str, Any] | None:
    """None, or stats as stored before: maybe more partners than max_co (max_co was lowered),
    maybe as the store keeps them (JSON texts)."""
    if draw(st.booleans()):
        return None
    co = draw(st.dictionaries(st.sampled_from(PARTNERS[1:]), st.floats(0, 10), max_size=8))
    partitions = draw(st.sets(st.integers(0, 2)))
    payload = {
        "item_id": ITEM,
        "pop": draw(st.floats(0, 100)),
        "co": dict(sorted(co.items(), key=lambda kv: (-kv[1], kv[0]))),
        "ref": at(draw(st.floats(-300, 300))).isoformat(),
        "upto": {f"user.events/{p}": draw(st.integers(0, 6)) for p in partitions},
    }
    layout = draw(st.sampled_from(["objects", "fields", "packed"]))
    if layout == "fields":  # as stored before one text: co and upto as texts of their own
        return {**payload, "co": json.dumps(payload["co"]), "upto": json.dumps(payload["upto"])}
    return stored_stats(payload) if layout == "packed" else payload


def _co(payload: dict[str, Any]) -> dict[str, float]:
    co = payload["co"]
    return json.loads(co) if isinstance(co, str) else dict(co)


def assert_same(fast: dict[str, Any] | None, slow: dict[str, Any] | None) -> None:
    """The same payload up to float rounding: ref, upto and the set of partners exactly."""
    assert (fast is None) == (slow is None)
    if fast is None or slow is None:
        return
    assert list(fast) == list(slow)
    assert fast["item_id"] == slow["item_id"]
    assert fast["ref"] == slow["ref"]
    assert fast["upto"] == slow["upto"]
    assert fast["pop"] == pytest.approx(slow["pop"], rel=REL, abs=1e-300)
    fast_co, slow_co = _co(fast), _co(slow)
    assert set(fast_co) == set(slow_co)
    assert fast_co == pytest.approx(slow_co, rel=REL, abs=1e-300)
    # stored strongest first, ties by item id, as before
    assert list(fast_co) == sorted(fast_co, key=lambda k: (-fast_co[k], k))


@settings(max_examples=500, deadline=None)
@given(
    stored(),
    rows,
    st.integers(0, 5),
    st.sampled_from([168.0, 24.0, 1.0]),
)
def test_fold_gives_what_apply_activity_gives_one_at_a_time(
    stats: dict[str, Any] | None, table: list[Any], max_co: int, half_life: float
) -> None:
    """Replays below the watermark, several input partitions, out-of-order times, more partners
    than max_co, stored stats in either form: the fold's payload is apply_activity's in turn, to
    float rounding; only a cut between partners equal to rounding may keep another one."""
    activities = [act(*row) for row in table]
    slow, slow_applied, near_tie = one_at_a_time(stats, activities, half_life, max_co)
    assume(not near_tie)
    fast, fast_applied = fold_activities(stats, activities, half_life, max_co)
    assert fast_applied == slow_applied
    assert_same(fast, slow)

    # and as the consumer writes it: the stored form, with pop_key
    written, count = fold_item_activities(stats, activities, half_life, max_co)
    assert count == slow_applied
    if slow is None:
        assert written is None
        return
    key = popularity_key(slow, half_life)
    expected = stored_stats({**slow, "pop_key": key if key is not None else -1e300})
    assert written is not None and list(written) == list(expected) == ["stats", "pop_key"]
    assert written["pop_key"] == pytest.approx(expected["pop_key"], rel=REL)
    assert_same(json.loads(written["stats"]), json.loads(expected["stats"]))


@settings(max_examples=300, deadline=None)
@given(stored(), rows, st.integers(0, 5))
def test_without_a_move_of_ref_the_fold_is_exactly_apply_activity_ties_included(
    stats: dict[str, Any] | None, table: list[Any], max_co: int
) -> None:
    """Activities no later than the first applied one's time leave ref where it is: nothing is
    rescaled, so the fold gives apply_activity's payload to the bit, the order of co and the
    partners kept at exact ties (by item id) included."""
    activities = [act(p, o, w, -abs(h) - 301, co) for p, o, w, h, co in table]
    if stats is None and activities:  # the first activity sets ref; later ones are earlier
        first = activities[0]
        activities[0] = ItemActivity(ITEM, first.weight, at(0), first.source, first.co)
    slow, slow_applied, _ = one_at_a_time(stats, activities, 168.0, max_co)
    fast, fast_applied = fold_activities(stats, activities, 168.0, max_co)
    assert (fast, fast_applied) == (slow, slow_applied)
    if fast is not None and slow is not None:
        assert list(fast["co"]) == list(slow["co"])


def test_ties_at_the_cut_keep_the_smaller_item_ids_across_activities() -> None:
    """Equal partners at the cut: the larger ids go, after every activity, not just the last."""
    activities = [
        act(0, 1, 1.0, 0, {"d": 1.0, "c": 1.0, "b": 1.0}),  # keeps b, c
        act(0, 2, 1.0, 0, {"d": 5.0, "a": 1.0}),  # d back from nothing: 5 (not 6); a, b, c tie
        act(0, 3, 1.0, 0, {"b": 0.5}),  # b back from nothing: 0.5 < 1
    ]
    fast, applied = fold_activities(None, activities, 168.0, 2)
    slow, _, _ = one_at_a_time(None, activities, 168.0, 2)
    assert applied == 3
    assert fast == slow
    assert fast is not None and fast["co"] == {"d": 5.0, "a": 1.0}


def test_a_cut_is_made_after_each_activity_with_decay_between() -> None:
    """A partner cut by one activity starts again from nothing when a later one names it, the
    older values decayed to the later time; an earlier activity is decayed to ref."""
    activities = [
        act(0, 1, 1.0, 0, {"a": 8.0, "b": 2.0}),  # max_co 1: b is cut
        act(1, 1, 1.0, 168, {"b": 4.0}),  # a decays to 4; b is 4 (not 5): a tie, a stays
        act(1, 2, 1.0, 0, {"b": 10.0}),  # earlier: decayed to ref (168 h), b is 5 (not 9) > 4
    ]
    fast, applied = fold_activities(None, activities, 168.0, 1)
    assert applied == 3
    assert fast is not None and fast["ref"] == at(168).isoformat()
    assert fast["co"] == pytest.approx({"b": 5.0})
    assert fast["pop"] == pytest.approx(0.5 + 1.0 + 0.5)
    assert_same(fast, one_at_a_time(None, activities, 168.0, 1)[0])


def test_only_replays_give_nothing_to_write() -> None:
    """Every activity at or below its partition's watermark: no payload, none applied."""
    stats = {"item_id": ITEM, "pop": 1.0, "co": {}, "ref": at(0).isoformat()}
    stats["upto"] = {"user.events/0": 5, "user.events/1": 2}
    replays = [act(0, 5, 1.0, 1, {"a": 1.0}), act(1, 0, 1.0, 2, {}), act(0, 3, 1.0, 3, {})]
    assert fold_activities(stats, replays, 168.0, 10) == (None, 0)
    assert fold_item_activities(stats, replays, 168.0, 10) == (None, 0)
    assert fold_activities(stats, [], 168.0, 10) == (None, 0)


def test_another_items_activity_is_refused_like_apply_activity() -> None:
    """Stats of one item cannot take another item's activity, before or after one applied."""
    other = ItemActivity("sku-2", 1.0, at(0), "user.events/0/9#sku-2")
    stats = apply_activity(None, act(0, 1, 1.0, 0, {}), 168.0, 10)
    with pytest.raises(ValueError, match="cannot take"):
        fold_activities(stats, [other], 168.0, 10)
    with pytest.raises(ValueError, match="cannot take"):
        fold_activities(None, [act(0, 1, 1.0, 0, {}), other], 168.0, 10)
