"""The internal item-activity topic's messages (key = ``item_id``): the behaviour consumer
repartitions each shopper event by item, and the item-stats consumer reads them in item order.

The topic is internal but still input: a message that is not an activity (another producer, a
damaged record, a version skew) must become a dead letter (:func:`parse_activity`), never an
exception that stops the item-stats consumer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard

from schemas import jsontext
from schemas.catalog import MAX_ID_CHARS
from schemas.errors import (
    INVALID_JSON,
    KEY_MISMATCH,
    SCHEMA,
    InvalidEvent,
    require_key,
    shorten,
)
from schemas.source import source_position

_MAX_SOURCE_CHARS = 1_000
"""``topic/partition/offset#item``: a topic name (at most 249), numbers and an item id."""


@dataclass(frozen=True)
class ItemActivity:
    """One item's share of one shopper interaction, keyed by item (the repartitioned stream).

    ``source`` is unique per original event and item (like ``"user.events/3/1207#sku-1"``: the
    input partition, the offset, the item); ``co`` maps the other items the shopper recently
    touched to the weight of the pair.
    """

    item_id: str
    weight: float
    at: datetime
    source: str
    co: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> bytes:
        body = {
            "item_id": self.item_id,
            "weight": self.weight,
            "at": self.at.isoformat(),
            "source": self.source,
            "co": self.co,
        }
        return jsontext.dump_bytes(body, sort_keys=True)

    @classmethod
    def from_json(cls, b: bytes) -> ItemActivity:
        """Inverse of :meth:`to_json`; raises ``ValueError`` on anything else."""
        try:
            body = jsontext.loads(b)
        # JSONDecodeError, UnicodeDecodeError; nesting deeper than the parser's stack
        except (ValueError, TypeError, RecursionError) as exc:
            raise _NotJson(f"not JSON: {str(exc)[:200]}") from exc
        return cls.from_body(body)

    @classmethod
    def from_body(cls, body: object) -> ItemActivity:
        """An activity from its decoded JSON body; raises ``ValueError`` on anything else."""
        if not isinstance(body, dict):
            raise ValueError("an item activity must be a JSON object")
        item_id, source, at_raw = (_text(body, name) for name in ("item_id", "source", "at"))
        source_position(source)
        at = datetime.fromisoformat(at_raw)
        if at.utcoffset() is None:
            raise ValueError("at must carry a time zone")
        try:
            at = at.astimezone(UTC)  # year 1 at +14:00 is not an instant datetime can hold
        except OverflowError:
            raise ValueError("at must be representable in UTC (years 1..9999)") from None
        co = body.get("co", {})
        if not isinstance(co, dict) or not all(_is_text(k) for k in co):
            raise ValueError("co must map item ids to weights")
        return cls(
            item_id=item_id,
            weight=_weight(body.get("weight"), "weight"),
            at=at,
            source=source,
            co={k: _weight(v, f"co[{shorten(k, 40)!r}]") for k, v in co.items()},
        )


class _NotJson(ValueError):
    """The bytes are not JSON at all (``invalid_json``, not ``schema``)."""


def parse_activity(key: bytes | None, value: bytes | None) -> ItemActivity:
    """One item-activity message, its key the activity's item id; raises only
    :class:`~schemas.errors.InvalidEvent` (``invalid_json``, ``schema``, ``missing_key``,
    ``key_mismatch``), whatever the bytes."""
    if value is None:
        raise InvalidEvent(INVALID_JSON, "null value (tombstone); the activity topic has none")
    try:
        activity = ItemActivity.from_json(value)
    except _NotJson as exc:
        raise InvalidEvent(INVALID_JSON, str(exc)) from None
    except ValueError as exc:
        raise InvalidEvent(SCHEMA, str(exc)) from None
    # decoding is pure: whatever else it raises, these bytes caused it, and would again
    except Exception as exc:
        raise InvalidEvent(SCHEMA, f"undecodable activity ({type(exc).__name__})") from None
    require_key(key, "item id")
    if key != activity.item_id.encode():
        raise InvalidEvent(KEY_MISMATCH, "key is not the activity's item id")
    return activity


def _text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    limit = _MAX_SOURCE_CHARS if name == "source" else MAX_ID_CHARS
    if not _is_text(value, limit):
        raise ValueError(f"{name} must be a string of 1..{limit} characters of valid Unicode")
    return value


def _is_text(value: object, limit: int = MAX_ID_CHARS) -> TypeGuard[str]:
    """A string of 1..``limit`` characters that encodes as UTF-8 (JSON's ``"\\ud800"`` decodes
    to a lone surrogate, which does not, and would fail later as a key or a point id)."""
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _weight(value: object, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{name} must be a number")
    try:
        number = float(value)  # an integer of hundreds of digits overflows here
    except OverflowError:
        raise ValueError(f"{name} is too large") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be finite and not negative")
    return number
