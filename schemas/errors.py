"""Bytes to events, or why not: :class:`InvalidEvent` with a short reason code and a detail.

The reason code becomes the dead-letter header ``recstream.error`` and the detail
``recstream.detail``, so both stay short and never echo a (possibly huge) input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import TypeAdapter, ValidationError
from pydantic_core import from_json

INVALID_JSON = "invalid_json"
"""Not UTF-8, not JSON, NaN/Infinity literals, nesting too deep, or a null (tombstone) value."""
SCHEMA = "schema"
"""Valid JSON that fails validation: missing fields, wrong types, limits exceeded."""
KEY_MISMATCH = "key_mismatch"
"""The Kafka key is present and differs from the entity id in the body."""
MISSING_KEY = "missing_key"
"""The message has no Kafka key: an entity's events must share a key (so a partition, so one
writer), the input topics are keyed by the entity id."""
TOO_LARGE = "too_large"
"""The message is larger than ``RECSTREAM_MAX_MESSAGE_BYTES``: rejected before parsing."""
ENCODER_REJECTED = "encoder_rejected"
"""The encoder refused the item's text."""
FUTURE_EVENT = "future_event"
"""A shopper event dated further ahead of the consumer's clock than
``RECSTREAM_HISTORY_MAX_FUTURE_S``: kept, it would outweigh every real event for years."""

T = TypeVar("T")

MAX_DETAIL_CHARS = 1_000
"""A dead letter's ``recstream.detail`` is cut to this many characters."""
_MAX_PART_CHARS = 120


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class InvalidEvent(Exception):
    """An input message that can never be processed; it belongs on the dead-letter topic."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = shorten(detail, MAX_DETAIL_CHARS)
        super().__init__(f"{self.reason}: {self.detail}")

    @classmethod
    def from_validation_error(cls, exc: ValidationError) -> InvalidEvent:
        """Classify a pydantic error: ``invalid_json`` when parsing failed, else ``schema``."""
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if any(err["type"] == "json_invalid" for err in errors):
            return cls(INVALID_JSON, shorten(errors[0]["msg"], _MAX_PART_CHARS))
        parts = []
        for err in errors[:8]:
            # Locations can hold input-controlled dict keys, messages can quote input tags.
            loc = ".".join(shorten(str(p), 40) for p in err["loc"]) or "<body>"
            parts.append(f"{loc}: {shorten(err['msg'], _MAX_PART_CHARS)}")
        more = f" (+{len(errors) - 8} more)" if len(errors) > 8 else ""
        return cls(SCHEMA, "; ".join(parts) + more)


def require_key(key: bytes | None, entity: str) -> None:
    """Raise :class:`InvalidEvent` (``missing_key``) for a message without a Kafka key; checked
    after the body, so that a bad body keeps its own reason."""
    if key is None:
        raise InvalidEvent(
            MISSING_KEY,
            f"no Kafka key: the topic is keyed by {entity}, so that each one's events share a "
            "partition and one writer",
        )


def parse_message(
    adapter: TypeAdapter[T], key: bytes | None, value: bytes | None, entity_id: Callable[[T], str]
) -> T:
    """Validate one Kafka message's value and check its key against ``entity_id(event)``.

    Raises only :class:`InvalidEvent`, whatever the bytes.
    """
    if value is None:
        raise InvalidEvent(INVALID_JSON, "null value (tombstone); input topics carry no tombstones")
    # pydantic's JSON parser accepts NaN/Infinity literals; the contract's JSON does not. The
    # substring test keeps the strict second parse off the hot path for ordinary messages.
    if b"NaN" in value or b"Infinity" in value:
        try:
            from_json(value, allow_inf_nan=False)
        except ValueError as exc:
            raise InvalidEvent(INVALID_JSON, shorten(str(exc), _MAX_PART_CHARS)) from None
    try:
        event = adapter.validate_json(value)
    except ValidationError as exc:
        raise InvalidEvent.from_validation_error(exc) from None
    if key is not None:
        expected = entity_id(event)
        try:
            key_text = key.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEvent(KEY_MISMATCH, "Kafka key is not valid UTF-8") from None
        if key_text != expected:
            raise InvalidEvent(
                KEY_MISMATCH,
                f"Kafka key {shorten(key_text, 80)!r} differs from the body's id "
                f"{shorten(expected, 80)!r}",
            )
    return event
