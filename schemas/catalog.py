"""Catalogue events on ``catalog.items`` (key = ``item_id``): item created, updated, deleted.

Unknown fields are ignored (forward compatibility); wrong JSON types are invalid (strict mode:
``"12.5"`` is not a price, ``1`` is not a string). The limits below are part of the contract.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
)

from schemas.errors import parse_message

MAX_ID_CHARS = 256
MAX_TITLE_CHARS = 1_000
MAX_DESCRIPTION_CHARS = 20_000
MAX_BRAND_CHARS = 200
MAX_CATEGORIES = 16
MAX_CATEGORY_CHARS = 200
MAX_PRICE = 1e9
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_KEY_CHARS = 100
MAX_ATTRIBUTE_VALUE_CHARS = 1_000
# Versions and integer attributes fit a signed 64-bit integer (Qdrant payloads, other languages).
MAX_VERSION = 2**63 - 1
MIN_INT = -(2**63)

EVENT_CONFIG = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False, strict=True)

_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _no_control_chars(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


EntityId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ID_CHARS),
    AfterValidator(_no_control_chars),
]
"""An item, user or event id: 1..256 characters after stripping, no control characters."""


def _to_utc(value: datetime) -> datetime:
    # One time zone downstream; an instant outside datetime's range in UTC (year 0 or 10000)
    # would otherwise raise OverflowError later, in ordering or in timestamp().
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("must be representable in UTC (years 1..9999)") from None


Timestamp = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A time-zone-aware instant (naive times are rejected), converted to UTC."""

AttributeValue = (
    Annotated[str, StringConstraints(max_length=MAX_ATTRIBUTE_VALUE_CHARS)]
    | bool
    # Integers beyond 64 bits are validated as floats (pydantic's smart union), still finite.
    | Annotated[int, Field(ge=MIN_INT, le=MAX_VERSION)]
    | float
)


class Item(BaseModel):
    """One catalogue item as carried by ``item.created`` and ``item.updated``."""

    model_config = EVENT_CONFIG

    item_id: EntityId
    title: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE_CHARS)
    ]
    description: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_DESCRIPTION_CHARS)]
        | None
    ) = None
    brand: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_BRAND_CHARS)] | None
    ) = None
    categories: list[
        Annotated[
            str,
            StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CATEGORY_CHARS),
        ]
    ] = Field(default_factory=list, max_length=MAX_CATEGORIES)
    """The category path, broad to narrow."""
    price: float | None = Field(default=None, ge=0, le=MAX_PRICE)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    in_stock: bool = True
    attributes: dict[
        Annotated[
            str,
            StringConstraints(
                strip_whitespace=True, min_length=1, max_length=MAX_ATTRIBUTE_KEY_CHARS
            ),
        ],
        AttributeValue,
    ] = Field(default_factory=dict, max_length=MAX_ATTRIBUTES)

    @field_validator("title")
    @classmethod
    def _title_is_visible(cls, value: str) -> str:
        # Whitespace, control and format characters alone would embed as an empty text.
        if all(unicodedata.category(ch) in _INVISIBLE_CATEGORIES for ch in value):
            raise ValueError("must contain a visible character")
        return value

    @field_validator("description", "brand")
    @classmethod
    def _blank_is_missing(cls, value: str | None) -> str | None:
        # Feeds often send "" for "unknown"; treating it as absent keeps the embedded text clean.
        return value or None


class _ItemUpsert(BaseModel):
    model_config = EVENT_CONFIG

    event_id: EntityId
    occurred_at: Timestamp
    version: int | None = Field(default=None, ge=0, le=MAX_VERSION)
    item: Item

    @property
    def item_id(self) -> str:
        """The id of the item this event is about."""
        return self.item.item_id


class ItemCreated(_ItemUpsert):
    """A new item; same body as :class:`ItemUpdated`."""

    type: Literal["item.created"]


class ItemUpdated(_ItemUpsert):
    """A changed item, carrying the whole item (not a patch)."""

    type: Literal["item.updated"]


class ItemDeleted(BaseModel):
    """An item removed from the catalogue."""

    model_config = EVENT_CONFIG

    type: Literal["item.deleted"]
    event_id: EntityId
    occurred_at: Timestamp
    version: int | None = Field(default=None, ge=0, le=MAX_VERSION)
    item_id: EntityId


CatalogEvent = Annotated[ItemCreated | ItemUpdated | ItemDeleted, Field(discriminator="type")]

CATALOG_EVENT_ADAPTER: TypeAdapter[CatalogEvent] = TypeAdapter(CatalogEvent)


def event_item_id(event: CatalogEvent) -> str:
    """The id of the item a catalogue event is about."""
    return event.item_id


def parse_catalog_event(key: bytes | None, value: bytes | None) -> CatalogEvent:
    """Parse one ``catalog.items`` message; raises only :class:`~schemas.errors.InvalidEvent`.

    Reason codes: ``invalid_json``, ``schema``, ``key_mismatch`` (a key that is present and is
    not the body's ``item_id``, compared after the id's whitespace is stripped).
    """
    return parse_message(CATALOG_EVENT_ADAPTER, key, value, event_item_id)
