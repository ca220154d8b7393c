"""The internal activity topic's parser: whatever a message holds, only ``InvalidEvent`` (with a
reason code) escapes, and what it accepts the item-stats fold can take."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.activity import ItemActivity, parse_activity
from schemas.errors import INVALID_JSON, KEY_MISMATCH, MISSING_KEY, SCHEMA, InvalidEvent
from stream.ranking.stats import fold_activities

VALID = {
    "item_id": "sku-1",
    "weight": 2.0,
    "at": "2026-11-22T10:00:00+00:00",
    "source": "user.events/0/7#sku-1",
    "co": {"sku-2": 1.0},
}

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**500), max_value=10**500)
    | st.floats()
    | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF)),  # surrogates
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)
_TIMES = st.sampled_from(
    [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "2026-11-22T10:00:00",
        "2026-02-30T10:00:00+00:00",
        "2026-11-22T10:00:00+23:59",
    ]
)


def _check(key: bytes | None, value: bytes | None) -> None:
    try:
        activity = parse_activity(key, value)
    except InvalidEvent as exc:
        assert exc.reason in (INVALID_JSON, SCHEMA, MISSING_KEY, KEY_MISMATCH)
        return
    assert key == activity.item_id.encode()
    fold_activities(None, [activity, activity], 168.0, 10)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from([*VALID, "extra"]), value=_JSON | _TIMES)
def test_only_invalid_event_escapes_and_accepted_activities_fold(field: str, value: Any) -> None:
    """One field of a valid activity replaced by any JSON value (huge integers, lone
    surrogates, odd times, nesting): an activity the fold takes, or InvalidEvent."""
    body = {**VALID, field: value}
    _check(b"sku-1", json.dumps(body).encode())
    if isinstance(value, str) and field == "item_id":
        _check(value.encode("utf-8", "surrogatepass"), json.dumps(body).encode())


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.binary(max_size=200), key=st.none() | st.binary(max_size=8))
def test_only_invalid_event_escapes_any_bytes(value: bytes, key: bytes | None) -> None:
    """Any bytes at all: an activity, or InvalidEvent."""
    _check(key, value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"[" * 100_000, INVALID_JSON),
        (json.dumps(VALID).replace('"weight": 2.0', '"weight": ' + "9" * 400), SCHEMA),
        (json.dumps({**VALID, "item_id": "\ud800"}), SCHEMA),
        (json.dumps({**VALID, "at": "0001-01-01T00:00:00+14:00"}), SCHEMA),
        (json.dumps({**VALID, "item_id": "x" * 257}), SCHEMA),
        (None, INVALID_JSON),
    ],
)
def test_poison_pills_get_their_reason_code(value: bytes | str | None, reason: str) -> None:
    """Deep JSON, a 400-digit weight, a lone surrogate, a time outside UTC's range, an id over
    256 characters, a tombstone: each an InvalidEvent with its reason code."""
    with pytest.raises(InvalidEvent) as info:
        parse_activity(b"sku-1", value.encode() if isinstance(value, str) else value)
    assert info.value.reason == reason


def test_a_valid_activity_round_trips_in_utc() -> None:
    """to_json then parse_activity gives the activity back; a time in another zone reads in UTC."""
    at = datetime(2026, 11, 22, 10, tzinfo=UTC)
    activity = ItemActivity("sku-1", 2.0, at, "user.events/0/7#sku-1", {"sku-2": 1.0})
    assert parse_activity(b"sku-1", activity.to_json()) == activity
    shifted = json.dumps({**VALID, "at": "2026-11-22T12:00:00+02:00"}).encode()
    assert parse_activity(b"sku-1", shifted).at.utcoffset() is not None
    assert parse_activity(b"sku-1", shifted).at == at
