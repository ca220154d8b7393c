"""The sample catalogue: deterministic, well spread, and shaped like the wire format."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from itertools import combinations

from recstream_tools.sample_catalog import CATEGORIES, catalog_events, sample_items

_ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$")
_ITEM_KEYS = {
    "item_id",
    "title",
    "description",
    "brand",
    "categories",
    "price",
    "currency",
    "in_stock",
    "attributes",
}


def test_same_seed_gives_the_same_items_and_another_seed_does_not() -> None:
    """Generation is deterministic by seed, and the seed matters."""
    assert sample_items(300, seed=3) == sample_items(300, seed=3)
    assert sample_items(300, seed=3) != sample_items(300, seed=4)


def test_n_items_with_unique_sku_ids() -> None:
    """Exactly n items come back, ids unique and shaped like ``sku-000123``."""
    items = sample_items(1200)
    ids = [item["item_id"] for item in items]
    assert len(items) == 1200
    assert len(set(ids)) == 1200
    assert all(re.fullmatch(r"sku-\d{6}", item_id) for item_id in ids)
    assert sample_items(0) == []


def test_items_have_the_wire_item_shape() -> None:
    """Every item carries the item fields of the wire format, with the documented types."""
    for item in sample_items(1200):
        assert set(item) == _ITEM_KEYS
        assert isinstance(item["title"], str) and item["title"]
        assert isinstance(item["brand"], str) and item["brand"]
        assert item["currency"] == "EUR"
        assert isinstance(item["in_stock"], bool)
        assert isinstance(item["price"], float) and item["price"] > 0
        assert isinstance(item["categories"], list) and len(item["categories"]) >= 2
        assert all(isinstance(name, str) and name for name in item["categories"])
        assert isinstance(item["attributes"], dict) and item["attributes"]
        assert all(isinstance(v, str) for v in item["attributes"].values())
        sentences = re.findall(r"(?<!\b[A-Z])[.!?](?:\s|$)", item["description"])  # not "J. P."
        assert 1 <= len(sentences) <= 3, item["description"]
        assert "{" not in item["title"] + item["description"]


def test_at_least_eight_categories_with_fifty_items_each() -> None:
    """With the default n=1200, at least 8 top-level categories hold at least 50 items each."""
    counts = Counter(item["categories"][0] for item in sample_items(1200))
    assert len(counts) >= 8
    assert set(counts) == set(CATEGORIES)
    assert min(counts.values()) >= 50


def test_several_product_types_per_category() -> None:
    """Each top-level category holds several product types (distinct category paths)."""
    paths: dict[str, set[tuple[str, ...]]] = {}
    for item in sample_items(1200):
        paths.setdefault(item["categories"][0], set()).add(tuple(item["categories"]))
    assert all(len(types) >= 3 for types in paths.values()), paths


def _words(item: dict[str, object]) -> set[str]:
    return set(re.findall(r"[a-z]+", f"{item['title']} {item['description']}".lower()))


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b)


def test_items_of_one_type_read_more_alike_than_items_of_different_categories() -> None:
    """Word overlap is higher within a product type than across top-level categories."""
    texts = [(item["categories"], _words(item)) for item in sample_items(450, seed=11)]
    same: list[float] = []
    different: list[float] = []
    for (path_a, words_a), (path_b, words_b) in combinations(texts, 2):
        if path_a == path_b:
            same.append(_jaccard(words_a, words_b))
        elif path_a[0] != path_b[0]:
            different.append(_jaccard(words_a, words_b))
    assert sum(same) / len(same) > 3 * (sum(different) / len(different))


def test_events_are_item_created_with_the_required_fields() -> None:
    """Every event is an ``item.created`` with event_id, occurred_at (ISO, Z), version 1, item."""
    items = sample_items(50)
    events = catalog_events(items, datetime(2026, 11, 22, 10, 0, tzinfo=UTC))
    assert len(events) == len(items)
    assert len({event["event_id"] for event in events}) == len(events)
    for event, item in zip(events, items, strict=True):
        assert event["type"] == "item.created"
        assert isinstance(event["event_id"], str) and event["event_id"]
        assert _ISO_Z.match(event["occurred_at"]), event["occurred_at"]
        assert event["version"] == 1
        assert event["item"] == item
    assert events[0]["occurred_at"] == "2026-11-22T10:00:00Z"
    assert events[1]["occurred_at"] == "2026-11-22T10:00:01Z"


def test_event_times_are_converted_to_utc_and_spaced_by_step() -> None:
    """An aware start in another zone is written in UTC; a naive one is taken as UTC."""
    items = sample_items(3)
    cet = timezone(timedelta(hours=1))
    events = catalog_events(
        items, datetime(2026, 11, 22, 11, 0, tzinfo=cet), timedelta(milliseconds=250)
    )
    assert [event["occurred_at"] for event in events] == [
        "2026-11-22T10:00:00Z",
        "2026-11-22T10:00:00.250Z",
        "2026-11-22T10:00:00.500Z",
    ]
    naive = catalog_events(items, datetime(2026, 11, 22, 10, 0))
    assert naive[0]["occurred_at"] == "2026-11-22T10:00:00Z"


def test_events_hold_copies_of_the_items() -> None:
    """Changing an event's item leaves the original item untouched."""
    items = sample_items(1)
    event = catalog_events(items, datetime(2026, 11, 22, tzinfo=UTC))[0]
    event["item"]["attributes"]["colour"] = "changed"
    event["item"]["categories"].append("changed")
    assert "changed" not in items[0]["categories"]
    assert items[0]["attributes"].get("colour") != "changed"
