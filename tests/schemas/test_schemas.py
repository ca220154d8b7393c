"""Event and output schemas: the wire contract of docs/design.md, limits and rejection reasons."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import (
    MESSAGE_NAMES,
    InvalidEvent,
    Item,
    ItemCreated,
    ItemDeleted,
    ItemUpdated,
    Neighbour,
    NeighbourList,
    Recommendations,
    RecommendedItem,
    UserEvent,
    event_item_id,
    export_schemas,
    parse_behaviour_event,
    parse_catalog_event,
)
from schemas import catalog as c
from schemas.behaviour import MAX_QUANTITY
from schemas.errors import MAX_DETAIL_CHARS
from schemas.outputs import neighbour_list_json, recommendations_json

# The examples of docs/design.md, "Messages on the wire", verbatim.
CREATED = b"""{"type": "item.created", "event_id": "e-1", "occurred_at": "2026-11-22T10:00:00Z",
 "version": 1,
 "item": {"item_id": "sku-1", "title": "Cotton crew-neck T-shirt", "description": "Breathable ...",
          "brand": "Acme", "categories": ["Clothing", "Men", "T-Shirts"], "price": 12.5,
          "currency": "EUR", "in_stock": true, "attributes": {"colour": "red"}}}"""
DELETED = (
    b'{"type": "item.deleted", "event_id": "e-2", "occurred_at": "2026-11-22T10:00:00Z",'
    b' "version": 2, "item_id": "sku-1"}'
)
PURCHASE = b"""{"type": "purchase", "event_id": "e-9", "occurred_at": "2026-11-22T10:05:00Z",
 "user_id": "u-42", "item_id": "sku-1", "quantity": 1}"""
NEIGHBOURS = b"""{"item_id": "sku-1", "neighbours": [{"item_id": "sku-9", "score": 0.83}],
 "model": "all-MiniLM-L6-v2", "item_version": 1, "generated_at": "2026-11-22T10:00:01Z"}"""
RECOMMENDATIONS = b"""{"user_id": "u-42", "items": [{"item_id": "sku-7", "score": 0.71,
  "components": {"semantic": 0.64, "collaborative": 0.2, "popularity": 0.1}}],
 "generated_at": "2026-11-22T10:05:01Z"}"""


def created(**item: Any) -> bytes:
    """An item.created message whose item is sku-1 with a title, updated by ``item``."""
    body = {"item_id": "sku-1", "title": "T-shirt", **item}
    event = {"type": "item.created", "event_id": "e", "occurred_at": "2026-11-22T10:00:00Z"}
    return json.dumps({**event, "item": body}).encode()


def reason(key: bytes | None, value: bytes | None) -> str:
    """The reason code parse_catalog_event gives for a message it must reject."""
    with pytest.raises(InvalidEvent) as info:
        parse_catalog_event(key, value)
    return info.value.reason


# --- the design's examples ---------------------------------------------------------------


def test_design_catalog_examples_parse() -> None:
    """The design's item.created example and an item.deleted body parse with their fields."""
    event = parse_catalog_event(b"sku-1", CREATED)
    assert isinstance(event, ItemCreated)
    assert event.version == 1
    assert event.occurred_at == datetime(2026, 11, 22, 10, tzinfo=UTC)
    assert event.item.categories == ["Clothing", "Men", "T-Shirts"]
    assert event.item.attributes == {"colour": "red"}
    assert (event.item.price, event.item.currency, event.item.in_stock) == (12.5, "EUR", True)
    deleted = parse_catalog_event(b"sku-1", DELETED)
    assert isinstance(deleted, ItemDeleted)
    assert event_item_id(event) == event_item_id(deleted) == "sku-1"


def test_item_updated_has_the_created_body() -> None:
    """item.updated takes the same body as item.created and gives an ItemUpdated."""
    event = parse_catalog_event(b"sku-1", CREATED.replace(b"item.created", b"item.updated"))
    assert isinstance(event, ItemUpdated)
    assert event.item_id == "sku-1"


def test_design_behaviour_example_parses() -> None:
    """The design's purchase example parses; every behaviour type is accepted."""
    event = parse_behaviour_event(b"u-42", PURCHASE)
    assert (event.type, event.user_id, event.item_id, event.quantity) == (
        "purchase",
        "u-42",
        "sku-1",
        1,
    )
    for kind in ("view", "click", "add_to_cart"):
        assert (
            parse_behaviour_event(None, PURCHASE.replace(b"purchase", kind.encode())).type == kind
        )


def test_design_output_examples_round_trip() -> None:
    """The design's output examples validate and serialise back to the same JSON."""
    for model, raw in ((NeighbourList, NEIGHBOURS), (Recommendations, RECOMMENDATIONS)):
        message = model.model_validate_json(raw)
        assert json.loads(message.to_json_bytes()) == json.loads(raw)


def test_outputs_write_generated_at_in_utc_with_z() -> None:
    """generated_at is written as ISO 8601 in UTC with a Z suffix, whatever its time zone."""
    at = datetime(2026, 11, 22, 12, 0, 1, tzinfo=timezone(timedelta(hours=2)))
    out = NeighbourList(
        item_id="a", neighbours=[Neighbour(item_id="b", score=0.5)], model="m", generated_at=at
    )
    assert json.loads(out.to_json_bytes())["generated_at"] == "2026-11-22T10:00:01Z"
    recs = Recommendations(
        user_id="u",
        items=[RecommendedItem(item_id="b", score=0.5, components={"semantic": 0.5})],
        generated_at=at,
    )
    assert json.loads(recs.to_json_bytes())["generated_at"] == "2026-11-22T10:00:01Z"


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    item_id=st.text(min_size=1, max_size=20),
    neighbours=st.lists(
        st.tuples(st.text(min_size=1, max_size=20), st.floats(-1, 1, allow_nan=False)),
        max_size=12,
    ),
    version=st.one_of(st.none(), st.integers(0, 2**53)),
    offset_hours=st.integers(-12, 12),
)
def test_fast_neighbour_list_json_is_the_models_message(
    item_id: str,
    neighbours: list[tuple[str, float]],
    version: int | None,
    offset_hours: int,
) -> None:
    """neighbour_list_json (the catalog consumer's writer) gives the message NeighbourList
    writes: the same JSON once parsed, and it validates as a NeighbourList."""
    at = datetime(2026, 11, 22, 12, 0, 1, 250_000, tzinfo=timezone(timedelta(hours=offset_hours)))
    model = NeighbourList(
        item_id=item_id,
        neighbours=[Neighbour(item_id=i, score=s) for i, s in neighbours],
        model="all-MiniLM-L6-v2",
        item_version=version,
        generated_at=at,
    )
    fast = neighbour_list_json(item_id, neighbours, "all-MiniLM-L6-v2", version, at)
    assert json.loads(fast) == json.loads(model.to_json_bytes())
    assert NeighbourList.model_validate_json(fast) == model


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    user_id=st.text(min_size=1, max_size=20),
    items=st.lists(
        st.tuples(
            st.text(min_size=1, max_size=20),
            st.floats(-1, 2, allow_nan=False),
            st.dictionaries(st.text(max_size=12), st.floats(0, 1), max_size=5),
        ),
        max_size=12,
    ),
    offset_hours=st.integers(-12, 12),
)
def test_fast_recommendations_json_is_the_models_message(
    user_id: str, items: list[tuple[str, float, dict[str, float]]], offset_hours: int
) -> None:
    """recommendations_json (the behaviour consumer's writer) gives the message Recommendations
    writes: the same JSON once parsed, and it validates as Recommendations."""
    at = datetime(2026, 11, 22, 12, 0, 1, 250_000, tzinfo=timezone(timedelta(hours=offset_hours)))
    model = Recommendations(
        user_id=user_id,
        items=[RecommendedItem(item_id=i, score=s, components=c) for i, s, c in items],
        generated_at=at,
    )
    fast = recommendations_json(user_id, items, at)
    assert json.loads(fast) == json.loads(model.to_json_bytes())
    assert Recommendations.model_validate_json(fast) == model


def test_fast_recommendations_json_refuses_infinity() -> None:
    with pytest.raises(ValueError):
        recommendations_json("u", [("a", 0.5, {"semantic": float("inf")})], datetime.now(UTC))


@pytest.mark.parametrize(
    "user_id, items",
    [("u\ud800", []), ("u", [("a\udfff", 0.5, {})]), ("u", [("a", 0.5, {1: 0.5})])],
)
def test_fast_recommendations_json_refuses_what_the_model_cannot_write(
    user_id: str, items: list[tuple[str, float, dict[Any, float]]]
) -> None:
    """A lone surrogate (no UTF-8 for it) or a component key that is not text: no message."""
    with pytest.raises(TypeError):
        recommendations_json(user_id, items, datetime.now(UTC))


def test_fast_neighbour_list_json_refuses_nan() -> None:
    with pytest.raises(ValueError):
        neighbour_list_json("a", [("b", float("nan"))], "m", 1, datetime.now(UTC))


def test_outputs_reject_nan_scores() -> None:
    """Outputs never hold a NaN score, which JSON cannot carry."""
    with pytest.raises(ValidationError):
        Neighbour(item_id="b", score=float("nan"))


# --- forward compatibility and normalisation ----------------------------------------------


def test_unknown_fields_are_ignored() -> None:
    """Unknown fields at every level are accepted and ignored."""
    body = json.loads(CREATED)
    body["new_top"] = {"x": [1, 2]}
    body["item"]["new_item_field"] = "y"
    event = parse_catalog_event(b"sku-1", json.dumps(body).encode())
    assert isinstance(event, ItemCreated)
    assert not hasattr(event, "new_top")
    assert "new_item_field" not in event.item.model_dump()
    purchase = json.loads(PURCHASE)
    purchase["session"] = "s-1"
    assert parse_behaviour_event(b"u-42", json.dumps(purchase).encode()).user_id == "u-42"


def test_optional_item_fields_default() -> None:
    """An item with only item_id and title gets the documented defaults."""
    event = parse_catalog_event(None, created())
    assert isinstance(event, ItemCreated)
    item = event.item
    assert (item.description, item.brand, item.price, item.currency) == (None, None, None, None)
    assert (item.categories, item.attributes, item.in_stock, event.version) == ([], {}, True, None)


def test_ids_and_title_are_stripped_and_blank_texts_are_absent() -> None:
    """Ids and title lose surrounding whitespace; a blank description or brand means absent."""
    event = parse_catalog_event(
        None, created(item_id="  sku-1 ", title=" Tee ", brand=" ", description="")
    )
    assert isinstance(event, ItemCreated)
    assert (event.item_id, event.item.title) == ("sku-1", "Tee")
    assert (event.item.brand, event.item.description) == (None, None)


def test_models_are_frozen() -> None:
    """Parsed events cannot be modified in place."""
    event = parse_catalog_event(None, created())
    with pytest.raises(ValidationError):
        event.event_id = "other"


# --- limits: the limit passes, one over fails with reason "schema" ------------------------

STRING_LIMITS = [
    ("item_id", c.MAX_ID_CHARS),
    ("title", c.MAX_TITLE_CHARS),
    ("description", c.MAX_DESCRIPTION_CHARS),
    ("brand", c.MAX_BRAND_CHARS),
]


@pytest.mark.parametrize(("field", "limit"), STRING_LIMITS)
def test_item_string_limits(field: str, limit: int) -> None:
    """Each item string field accepts exactly its limit in characters and rejects one more."""
    parse_catalog_event(None, created(**{field: "é" * limit}))
    assert reason(None, created(**{field: "é" * (limit + 1)})) == "schema"


@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_item_id_and_title_must_not_be_blank(value: str) -> None:
    """An empty or whitespace-only item_id or title is a schema error."""
    assert reason(None, created(item_id=value)) == "schema"
    assert reason(None, created(title=value)) == "schema"


@pytest.mark.parametrize("title", ["\x00", "\u200b\ufeff", "\u00a0\u2028\x07"])
def test_title_must_have_a_visible_character(title: str) -> None:
    """A title of only control, format or space characters is blank: schema error."""
    assert reason(None, created(title=title)) == "schema"


@pytest.mark.parametrize("bad", ["sku\x00-1", "sku\n1", "sku\x7f", "sku\x9b"])
def test_item_id_rejects_control_characters(bad: str) -> None:
    """Control characters inside an id are a schema error."""
    assert reason(None, created(item_id=bad)) == "schema"


def test_event_id_limit() -> None:
    """event_id accepts 256 characters and rejects 257 or none."""
    for n, ok in ((c.MAX_ID_CHARS, True), (c.MAX_ID_CHARS + 1, False), (0, False)):
        raw = json.loads(DELETED)
        raw["event_id"] = "e" * n
        value = json.dumps(raw).encode()
        if ok:
            parse_catalog_event(None, value)
        else:
            assert reason(None, value) == "schema"


def test_category_limits() -> None:
    """At most 16 categories of 1..200 characters each."""
    parse_catalog_event(None, created(categories=["c"] * c.MAX_CATEGORIES))
    parse_catalog_event(None, created(categories=["c" * c.MAX_CATEGORY_CHARS]))
    assert reason(None, created(categories=["c"] * (c.MAX_CATEGORIES + 1))) == "schema"
    assert reason(None, created(categories=["c" * (c.MAX_CATEGORY_CHARS + 1)])) == "schema"
    assert reason(None, created(categories=[""])) == "schema"


def test_price_limits() -> None:
    """price is within 0..1e9; 0 and 1e9 pass, negative and above fail; integers are prices."""
    for ok in (0, 0.0, 12, c.MAX_PRICE):
        parse_catalog_event(None, created(price=ok))
    for bad in (-0.01, c.MAX_PRICE * 1.0000001, 1e300):
        assert reason(None, created(price=bad)) == "schema"


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_literals_are_invalid_json(literal: bytes) -> None:
    """NaN/Infinity literals are not JSON: invalid_json, in a known field or an unknown one."""
    assert reason(None, created(price=1).replace(b'"price": 1', b'"price": ' + literal)) == (
        "invalid_json"
    )
    assert reason(None, created(extra=1).replace(b'"extra": 1', b'"extra": ' + literal)) == (
        "invalid_json"
    )


def test_nan_inside_strings_is_fine() -> None:
    """The words NaN and Infinity inside strings are ordinary text."""
    event = parse_catalog_event(None, created(title="Infinity scarf", brand="NaN"))
    assert isinstance(event, ItemCreated)
    assert event.item.title == "Infinity scarf"


def test_overflowing_number_is_schema() -> None:
    """A number too large for a float (1e400) is valid JSON but not a finite price: schema."""
    assert reason(None, created(price=1).replace(b'"price": 1', b'"price": 1e400')) == "schema"


@pytest.mark.parametrize("currency", ["EUR", "USD"])
def test_currency_accepts_three_upper_case_letters(currency: str) -> None:
    """A currency is three upper-case letters."""
    parse_catalog_event(None, created(currency=currency))


@pytest.mark.parametrize("currency", ["eur", "EU", "EURO", "E1R", ""])
def test_currency_rejects_other_codes(currency: str) -> None:
    """Lower case, wrong length or digits are schema errors."""
    assert reason(None, created(currency=currency)) == "schema"


def test_attribute_limits() -> None:
    """At most 64 attributes; keys 1..100 characters; string values up to 1000 characters."""
    ok = {f"k{i}": i for i in range(c.MAX_ATTRIBUTES)}
    parse_catalog_event(None, created(attributes=ok))
    assert reason(None, created(attributes={**ok, "one-more": 1})) == "schema"
    parse_catalog_event(None, created(attributes={"k" * c.MAX_ATTRIBUTE_KEY_CHARS: "v"}))
    assert reason(None, created(attributes={"k" * (c.MAX_ATTRIBUTE_KEY_CHARS + 1): "v"})) == (
        "schema"
    )
    assert reason(None, created(attributes={"": "v"})) == "schema"
    parse_catalog_event(None, created(attributes={"k": "v" * c.MAX_ATTRIBUTE_VALUE_CHARS}))
    assert reason(None, created(attributes={"k": "v" * (c.MAX_ATTRIBUTE_VALUE_CHARS + 1)})) == (
        "schema"
    )


def test_attribute_value_types() -> None:
    """Attribute values keep their JSON type (string, integer, number, boolean); others fail."""
    event = parse_catalog_event(None, created(attributes={"s": "x", "i": 3, "f": 1.5, "b": True}))
    assert isinstance(event, ItemCreated)
    values = event.item.attributes
    assert values == {"s": "x", "i": 3, "f": 1.5, "b": True}
    assert [type(values[k]) for k in "sifb"] == [str, int, float, bool]
    for bad in (None, [1], {"x": 1}):
        assert reason(None, created(attributes={"k": bad})) == "schema"


def test_version_limits() -> None:
    """version is a non-negative integer that fits 64 bits."""
    raw = json.loads(DELETED)
    for ok in (0, c.MAX_VERSION):
        parse_catalog_event(None, json.dumps({**raw, "version": ok}).encode())
    for bad in (-1, c.MAX_VERSION + 1, 1.5, "1"):
        assert reason(None, json.dumps({**raw, "version": bad}).encode()) == "schema"


def test_quantity_limits() -> None:
    """quantity is 1..10,000 and defaults to 1; price is optional and finite."""
    raw = json.loads(PURCHASE)
    del raw["quantity"]
    assert parse_behaviour_event(None, json.dumps(raw).encode()).quantity == 1
    for ok in (1, MAX_QUANTITY):
        parse_behaviour_event(None, json.dumps({**raw, "quantity": ok}).encode())
    for bad in (0, MAX_QUANTITY + 1):
        with pytest.raises(InvalidEvent) as info:
            parse_behaviour_event(None, json.dumps({**raw, "quantity": bad}).encode())
        assert info.value.reason == "schema"
    assert parse_behaviour_event(None, json.dumps({**raw, "price": 9.5}).encode()).price == 9.5
    with pytest.raises(InvalidEvent) as info:
        parse_behaviour_event(None, json.dumps({**raw, "price": -1}).encode())
    assert info.value.reason == "schema"


def test_unknown_behaviour_type_is_schema() -> None:
    """A behaviour type outside view/click/add_to_cart/purchase is a schema error."""
    with pytest.raises(InvalidEvent) as info:
        parse_behaviour_event(None, PURCHASE.replace(b"purchase", b"wishlist"))
    assert info.value.reason == "schema"


# --- time stamps -----------------------------------------------------------------------------


def test_naive_datetime_is_rejected() -> None:
    """occurred_at without a time zone is a schema error, on both input topics."""
    assert reason(None, DELETED.replace(b"10:00:00Z", b"10:00:00")) == "schema"
    with pytest.raises(InvalidEvent) as info:
        parse_behaviour_event(None, PURCHASE.replace(b"10:05:00Z", b"10:05:00"))
    assert info.value.reason == "schema"


def test_offset_datetime_is_converted_to_utc() -> None:
    """An explicit UTC offset is accepted and the instant is stored in UTC."""
    event = parse_catalog_event(None, DELETED.replace(b"10:00:00Z", b"12:00:00+02:00"))
    assert event.occurred_at == datetime(2026, 11, 22, 10, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("at", [b"9999-12-31T23:59:59-01:00", b"0001-01-01T00:00:00+01:00"])
def test_datetime_outside_utc_range_is_schema(at: bytes) -> None:
    """An instant that falls outside years 1..9999 in UTC is a schema error, not a crash later."""
    assert reason(None, DELETED.replace(b"2026-11-22T10:00:00Z", at)) == "schema"


# --- keys ------------------------------------------------------------------------------------


def test_key_mismatch() -> None:
    """A Kafka key different from the body's entity id is key_mismatch; no key is fine."""
    assert reason(b"sku-2", CREATED) == "key_mismatch"
    assert reason(b"sku-2", DELETED) == "key_mismatch"
    assert reason(b"", DELETED) == "key_mismatch"
    assert reason(b"\xff", DELETED) == "key_mismatch"
    assert event_item_id(parse_catalog_event(None, CREATED)) == "sku-1"
    with pytest.raises(InvalidEvent) as info:
        parse_behaviour_event(b"sku-1", PURCHASE)  # keyed by item, not user
    assert info.value.reason == "key_mismatch"


def test_key_mismatch_detail_is_bounded() -> None:
    """A huge key is not echoed in full in the detail."""
    with pytest.raises(InvalidEvent) as info:
        parse_catalog_event(b"k" * 100_000, CREATED)
    assert len(info.value.detail) <= MAX_DETAIL_CHARS


# --- rejection reasons ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "invalid_json"),  # a tombstone on an input topic
        (b"\xff\xfe{}", "invalid_json"),  # not UTF-8
        (b'{"title": "\xff"}', "invalid_json"),  # invalid UTF-8 inside a string
        (b"not json", "invalid_json"),
        (b"", "invalid_json"),
        (b'{"type": "item.deleted"', "invalid_json"),  # truncated
        (b"[" * 1000 + b"]" * 1000, "invalid_json"),  # nesting too deep
        (b"null", "schema"),  # valid JSON, not an object
        (b"[]", "schema"),
        (b"{}", "schema"),
        (b'{"type": "item.exploded"}', "schema"),
    ],
)
def test_reason_codes(value: bytes | None, expected: str) -> None:
    """Bytes that cannot be read as JSON are invalid_json; JSON of the wrong shape is schema."""
    assert reason(None, value) == expected


@pytest.mark.parametrize(
    "item",
    [
        {"title": 5},
        {"title": None},
        {"price": "12.5"},
        {"in_stock": "true"},
        {"categories": "Clothing"},
        {"attributes": ["colour", "red"]},
    ],
)
def test_wrong_types_are_schema(item: dict[str, Any]) -> None:
    """Wrong JSON types are schema errors, never coerced (no "12.5" -> 12.5)."""
    assert reason(None, created(**item)) == "schema"


def test_missing_required_fields_are_schema() -> None:
    """Missing title, item or occurred_at are schema errors whose detail names the field."""
    body = json.loads(CREATED)
    del body["item"]["title"]
    with pytest.raises(InvalidEvent) as info:
        parse_catalog_event(None, json.dumps(body).encode())
    assert info.value.reason == "schema"
    assert "title" in info.value.detail
    for field in ("item", "occurred_at", "event_id"):
        body = json.loads(CREATED)
        del body[field]
        assert reason(None, json.dumps(body).encode()) == "schema"


def test_schema_detail_is_short_for_huge_input() -> None:
    """A schema error about a huge value yields a bounded detail that does not echo it."""
    huge_tag = "x" * 100_000
    with pytest.raises(InvalidEvent) as info:
        parse_catalog_event(None, json.dumps({"type": huge_tag}).encode())
    assert info.value.reason == "schema"
    assert len(info.value.detail) <= MAX_DETAIL_CHARS
    many: dict[str, Any] = {f"{'k' * 5000}{i}": [] for i in range(100)}
    with pytest.raises(InvalidEvent) as info:
        parse_catalog_event(None, created(attributes=many))
    assert len(info.value.detail) <= MAX_DETAIL_CHARS


# --- fuzzing: only InvalidEvent escapes ----------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
field_names = st.sampled_from(
    [
        "type",
        "event_id",
        "occurred_at",
        "version",
        "item",
        "item_id",
        "title",
        "price",
        "categories",
        "attributes",
        "user_id",
        "quantity",
        "currency",
        "in_stock",
    ]
)
types = st.sampled_from(
    ["item.created", "item.updated", "item.deleted", "view", "click", "add_to_cart", "purchase"]
)


@st.composite
def event_like(draw: st.DrawFn) -> bytes:
    """JSON objects that look like events: a known type and a mix of known and random fields."""
    body: dict[str, Any] = {"type": draw(types)}
    body.update(draw(st.dictionaries(field_names, json_values, max_size=8)))
    if draw(st.booleans()):
        body["item"] = draw(st.dictionaries(field_names, json_values, max_size=8))
    return json.dumps(body).encode()


def assert_only_invalid_event(key: bytes | None, value: bytes | None) -> None:
    """Both parsers either return an event or raise InvalidEvent with a known reason."""
    for parse in (parse_catalog_event, parse_behaviour_event):
        try:
            parse(key, value)
        except InvalidEvent as exc:
            assert exc.reason in {"invalid_json", "schema", "key_mismatch"}
            assert len(exc.detail) <= MAX_DETAIL_CHARS


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.none() | st.binary(max_size=16), value=st.none() | st.binary(max_size=512))
def test_fuzz_any_bytes_raise_only_invalid_event(key: bytes | None, value: bytes | None) -> None:
    """Arbitrary key and value bytes never raise anything but InvalidEvent."""
    assert_only_invalid_event(key, value)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.none() | st.text(max_size=8).map(str.encode), value=event_like())
def test_fuzz_event_like_json_raises_only_invalid_event(key: bytes | None, value: bytes) -> None:
    """Event-shaped JSON with random field values never raises anything but InvalidEvent."""
    assert_only_invalid_event(key, value)


@settings(max_examples=100)
@given(
    depth=st.integers(min_value=1, max_value=5_000),
    opener=st.sampled_from([b"[", b'{"a":']),
    number=st.sampled_from([b"1e400", b"-1e400", b"9" * 5000, b"1" + b"0" * 400, b"-0", b"1E-400"]),
)
def test_fuzz_deep_nesting_and_huge_numbers(depth: int, opener: bytes, number: bytes) -> None:
    """Deep nesting and out-of-range numbers, alone or inside an event, raise only InvalidEvent."""
    closer = b"]" if opener == b"[" else b"}"
    nested = opener * depth + number + closer * depth
    assert_only_invalid_event(None, nested)
    assert_only_invalid_event(None, created(price=1).replace(b'"price": 1', b'"price": ' + number))
    assert_only_invalid_event(None, created(x=1).replace(b'"x": 1', b'"x": ' + nested))


# --- JSON Schema export -----------------------------------------------------------------------


def test_export_writes_a_json_schema_per_message(tmp_path: Path) -> None:
    """export_schemas creates the directory and writes one parseable JSON Schema per message,
    then the AsyncAPI document (tests/schemas/test_asyncapi.py checks its content)."""
    target = tmp_path / "new" / "dir"
    *paths, asyncapi = export_schemas(target)
    assert [p.name for p in paths] == [f"{n}.schema.json" for n in MESSAGE_NAMES]
    assert asyncapi.name == "asyncapi.yaml" and asyncapi.is_file()
    assert set(MESSAGE_NAMES) == {
        "catalog-event",
        "item-created",
        "item-updated",
        "item-deleted",
        "behaviour-event",
        "neighbour-list",
        "recommendations",
    }
    for path in paths:
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["$schema"].startswith("https://json-schema.org/")
        assert "properties" in schema or "oneOf" in schema
    union = json.loads((target / "catalog-event.schema.json").read_text(encoding="utf-8"))
    assert union["discriminator"]["propertyName"] == "type"


def test_export_is_stable(tmp_path: Path) -> None:
    """Exporting twice writes byte-identical files."""
    first = [p.read_bytes() for p in export_schemas(tmp_path / "a")]
    second = [p.read_bytes() for p in export_schemas(tmp_path / "b")]
    assert first == second


def test_exported_schema_matches_the_model_limits(tmp_path: Path) -> None:
    """The published schema carries the contract's limits (title length, categories count)."""
    export_schemas(tmp_path)
    schema = json.loads((tmp_path / "item-created.schema.json").read_text(encoding="utf-8"))
    item = schema["$defs"]["Item"]["properties"]
    assert item["title"]["maxLength"] == c.MAX_TITLE_CHARS
    assert item["categories"]["maxItems"] == c.MAX_CATEGORIES
    assert set(schema["required"]) >= {"type", "event_id", "occurred_at", "item"}


def test_python_constructed_events_validate_too() -> None:
    """Models built in Python apply the same rules as parsed messages."""
    at = datetime(2026, 11, 22, tzinfo=UTC)
    ItemDeleted(type="item.deleted", event_id="e", occurred_at=at, item_id="sku-1")
    with pytest.raises(ValidationError):
        ItemDeleted(
            type="item.deleted", event_id="e", occurred_at=datetime(2026, 1, 1), item_id="x"
        )
    with pytest.raises(ValidationError):
        Item(item_id="x", title="t", price=float("inf"))
    assert (
        UserEvent(type="view", event_id="e", occurred_at=at, user_id="u", item_id="i").quantity == 1
    )
