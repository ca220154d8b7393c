"""The catalogue batch plan: event ordering (stamps), newest event per item, and what each
item's newest event means against the store (encode, refresh, delete or stale)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from encoders.text import content_hash, item_text
from schemas.catalog import CatalogEvent, ItemDeleted, parse_catalog_event
from stream.catalog.plan import (
    Plan,
    Received,
    Stamp,
    item_payload,
    newest_per_item,
    plan_batch,
)

MODEL = "all-MiniLM-L6-v2"
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def _at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def upsert(
    item_id: str = "sku-1",
    *,
    version: int | None = 1,
    minutes: int = 0,
    kind: str = "item.updated",
    title: str = "Cotton crew-neck T-shirt",
    price: float = 12.5,
    event_id: str | None = None,
) -> CatalogEvent:
    """An item.created/updated event, parsed from its wire form."""
    body: dict[str, Any] = {
        "type": kind,
        "event_id": event_id or f"e-{item_id}-{version}-{minutes}",
        "occurred_at": _at(minutes),
        "item": {"item_id": item_id, "title": title, "brand": "Acme", "price": price},
    }
    if version is not None:
        body["version"] = version
    return parse_catalog_event(item_id.encode(), json.dumps(body).encode())


def delete(
    item_id: str = "sku-1",
    *,
    version: int | None = 1,
    minutes: int = 0,
    event_id: str | None = None,
) -> CatalogEvent:
    """An item.deleted event, parsed from its wire form."""
    body: dict[str, Any] = {
        "type": "item.deleted",
        "event_id": event_id or f"d-{item_id}-{version}-{minutes}",
        "occurred_at": _at(minutes),
        "item_id": item_id,
    }
    if version is not None:
        body["version"] = version
    return parse_catalog_event(item_id.encode(), json.dumps(body).encode())


def received(event: CatalogEvent, offset: int = 0) -> Received:
    """``event`` as the consumer hands it over: with its text and content hash for upserts."""
    text = digest = None
    if not isinstance(event, ItemDeleted):
        text = item_text(event.item)
        digest = content_hash(text)
    return Received(event, "catalog.items", 0, offset, text=text, content_hash=digest)


def stored(event: CatalogEvent, model: str = MODEL) -> dict[str, Any]:
    """The payload the store holds after ``event`` was applied."""
    return item_payload(received(event), model)


def deletion_record(event: CatalogEvent) -> dict[str, Any]:
    """The payload of the deletion record ``event`` left."""
    return received(event).stamp.to_payload()


def plan_one(
    event: CatalogEvent,
    current: dict[str, Any] | None = None,
    gone: dict[str, Any] | None = None,
    model: str = MODEL,
) -> Plan:
    r = received(event)
    return plan_batch(
        {r.item_id: r},
        {r.item_id: current} if current is not None else {},
        {r.item_id: gone} if gone is not None else {},
        model,
    )


def bucket(plan: Plan) -> str:
    """The one bucket a single-item plan put its item in."""
    found = [name for name in ("encode", "refresh", "delete", "stale") if getattr(plan, name)]
    assert len(found) == 1, found
    return found[0]


# --- Stamp.newer_than ------------------------------------------------------------------------


def test_versions_decide_when_both_have_one() -> None:
    """With a version on both sides, the higher version is newer whatever the times say."""
    later_time_lower_version = Stamp(1, T0 + timedelta(hours=1))
    earlier_time_higher_version = Stamp(2, T0)
    assert earlier_time_higher_version.newer_than(later_time_lower_version)
    assert not later_time_lower_version.newer_than(earlier_time_higher_version)


def test_equal_versions_fall_back_to_occurred_at() -> None:
    """Equal versions are ordered by occurred_at; equal versions and times are not newer."""
    assert Stamp(3, T0 + timedelta(seconds=1)).newer_than(Stamp(3, T0))
    assert not Stamp(3, T0).newer_than(Stamp(3, T0 + timedelta(seconds=1)))
    assert not Stamp(3, T0).newer_than(Stamp(3, T0))


def test_without_versions_occurred_at_decides() -> None:
    """Without versions the later occurred_at is newer."""
    assert Stamp(None, T0 + timedelta(minutes=1)).newer_than(Stamp(None, T0))
    assert not Stamp(None, T0).newer_than(Stamp(None, T0 + timedelta(minutes=1)))
    assert not Stamp(None, T0).newer_than(Stamp(None, T0))


@pytest.mark.parametrize(
    ("mine", "theirs"),
    [(5, None), (None, 5)],
    ids=["only-this-has-a-version", "only-the-other-has-a-version"],
)
def test_mixed_versions_compare_occurred_at(mine: int | None, theirs: int | None) -> None:
    """When only one side has a version, occurred_at decides, in both directions."""
    assert Stamp(mine, T0 + timedelta(minutes=1)).newer_than(Stamp(theirs, T0))
    assert not Stamp(mine, T0).newer_than(Stamp(theirs, T0 + timedelta(minutes=1)))


stamps = st.builds(
    Stamp,
    st.none() | st.integers(min_value=0, max_value=5),
    st.integers(min_value=0, max_value=5).map(lambda m: T0 + timedelta(minutes=m)),
)


@given(stamps, stamps)
def test_newer_than_is_asymmetric_and_irreflexive(a: Stamp, b: Stamp) -> None:
    """No two stamps are each newer than the other, and no stamp is newer than itself."""
    assert not (a.newer_than(b) and b.newer_than(a))
    assert not a.newer_than(a)


@given(stamps)
def test_stamp_survives_the_payload_round_trip(stamp: Stamp) -> None:
    """A stamp written into a payload reads back equal (what the store keeps is comparable)."""
    assert Stamp.from_payload(stamp.to_payload()) == stamp


# --- newest_per_item -------------------------------------------------------------------------


def test_newest_event_wins_whatever_its_place_in_the_batch() -> None:
    """The highest version of an item is kept even when older events come after it."""
    batch = [
        received(upsert(version=3, title="v3"), 0),
        received(upsert(version=1, title="v1"), 1),
        received(upsert(version=2, title="v2"), 2),
    ]
    assert newest_per_item(batch)["sku-1"] is batch[0]


def test_equal_stamps_the_later_event_in_the_batch_wins() -> None:
    """Two events with the same stamp: the one later in the log is kept."""
    first = received(upsert(version=2, title="first", event_id="e-a"), 0)
    second = received(upsert(version=2, title="second", event_id="e-b"), 1)
    assert newest_per_item([first, second])["sku-1"] is second
    assert newest_per_item([second, first])["sku-1"] is first


def test_each_item_keeps_its_own_newest() -> None:
    """Items do not compete: each id keeps its own newest event."""
    a1, a2 = received(upsert("a", version=1), 0), received(upsert("a", version=2), 1)
    b1 = received(upsert("b", version=7), 2)
    assert newest_per_item([a2, b1, a1]) == {"a": a2, "b": b1}


def test_a_newer_delete_replaces_an_update() -> None:
    """A deletion newer than the item's update in the same batch is what is kept."""
    update = received(upsert(version=1), 0)
    gone = received(delete(version=2), 1)
    assert newest_per_item([update, gone])["sku-1"] is gone


def test_a_newer_recreate_replaces_a_delete() -> None:
    """An upsert newer than a deletion in the same batch is kept, whatever the order."""
    gone = received(delete(version=2), 0)
    back = received(upsert(version=3, kind="item.created"), 1)
    assert newest_per_item([gone, back])["sku-1"] is back
    assert newest_per_item([back, gone])["sku-1"] is back


def test_an_older_update_after_a_delete_does_not_resurrect() -> None:
    """An upsert older than a deletion loses to it even when it comes later in the batch."""
    gone = received(delete(version=5), 0)
    late = received(upsert(version=4), 1)
    assert newest_per_item([gone, late])["sku-1"] is gone


def test_an_empty_batch_has_no_items() -> None:
    """Nothing in, nothing out."""
    assert newest_per_item([]) == {}


# --- plan_batch -----------------------------------------------------------------------------


def test_a_new_item_is_encoded() -> None:
    """An item the store has never seen (no point, no deletion record) is encoded."""
    assert bucket(plan_one(upsert(version=1, kind="item.created"))) == "encode"


def test_same_text_and_model_is_refreshed_not_encoded() -> None:
    """A newer event with the same content hash under the same model keeps the vector."""
    before = stored(upsert(version=1, price=12.5))
    assert bucket(plan_one(upsert(version=2, price=9.99), before)) == "refresh"


def test_same_text_under_another_model_is_encoded() -> None:
    """The same text stored under a different model must be encoded again."""
    before = stored(upsert(version=1), model="another-model")
    assert bucket(plan_one(upsert(version=2), before)) == "encode"


def test_changed_text_is_encoded() -> None:
    """A newer event whose text differs (another content hash) is encoded."""
    before = stored(upsert(version=1, title="Cotton crew-neck T-shirt"))
    assert bucket(plan_one(upsert(version=2, title="Linen shirt"), before)) == "encode"


def test_an_event_older_than_the_stored_item_is_stale() -> None:
    """An upsert with a lower version than the stored one changes nothing."""
    before = stored(upsert(version=5, title="Linen shirt"))
    assert bucket(plan_one(upsert(version=4, title="Cotton shirt"), before)) == "stale"


def test_without_versions_an_earlier_event_is_stale() -> None:
    """Without versions, an upsert with an earlier occurred_at than the stored one is stale."""
    before = stored(upsert(version=None, minutes=10))
    assert bucket(plan_one(upsert(version=None, minutes=5), before)) == "stale"


@pytest.mark.parametrize("version", [3, 4], ids=["older", "equal"])
def test_upsert_not_newer_than_the_deletion_is_stale(version: int) -> None:
    """An upsert older than, or as old as, the item's deletion record does not resurrect it."""
    gone = deletion_record(delete(version=4))
    assert bucket(plan_one(upsert(version=version), gone=gone)) == "stale"


def test_a_recreate_newer_than_the_deletion_is_encoded() -> None:
    """An item created again after its deletion, with a newer stamp, is encoded."""
    gone = deletion_record(delete(version=4))
    assert bucket(plan_one(upsert(version=5, kind="item.created"), gone=gone)) == "encode"


def test_deleting_a_live_item_is_a_delete() -> None:
    """A deletion newer than the stored item removes it."""
    before = stored(upsert(version=1))
    assert bucket(plan_one(delete(version=2), before)) == "delete"


def test_deleting_an_unknown_item_is_still_a_delete() -> None:
    """A deletion of an item the store does not hold is planned, so its record is written
    and a late, older create cannot bring the item back."""
    assert bucket(plan_one(delete(version=2))) == "delete"


def test_a_delete_older_than_the_stored_item_is_stale() -> None:
    """A deletion older than the stored item changes nothing."""
    before = stored(upsert(version=3))
    assert bucket(plan_one(delete(version=2), before)) == "stale"


def test_a_replayed_delete_is_planned_again() -> None:
    """A deletion equal to the item's deletion record is deleted again (idempotent), not stale."""
    event = delete(version=4)
    assert bucket(plan_one(event, gone=deletion_record(event))) == "delete"


def test_equal_stamp_replay_is_refreshed_not_stale() -> None:
    """Replaying the stored event (equal stamp) refreshes it, so its lists are recomputed."""
    event = upsert(version=2)
    assert bucket(plan_one(event, stored(event))) == "refresh"


def test_equal_stamp_replay_without_versions_is_refreshed() -> None:
    """The replay rule holds for events without versions too (equal occurred_at)."""
    event = upsert(version=None, minutes=3)
    assert bucket(plan_one(event, stored(event))) == "refresh"


def test_every_item_lands_in_exactly_one_bucket() -> None:
    """A mixed batch sorts each item into one bucket, and no item is lost or duplicated."""
    events = {
        "new": upsert("new", version=1, kind="item.created"),
        "same": upsert("same", version=2),
        "old": upsert("old", version=1),
        "gone": delete("gone", version=3),
    }
    newest = {key: received(e) for key, e in events.items()}
    current = {
        "same": stored(upsert("same", version=1)),
        "old": stored(upsert("old", version=2)),
        "gone": stored(upsert("gone", version=2)),
    }
    plan = plan_batch(newest, current, {}, MODEL)
    assert [r.item_id for r in plan.encode] == ["new"]
    assert [r.item_id for r in plan.refresh] == ["same"]
    assert [r.item_id for r in plan.stale] == ["old"]
    assert [r.item_id for r in plan.delete] == ["gone"]
