"""Behaviour events on ``user.events`` (key = ``user_id``): view, click, add_to_cart, purchase.

All four share one body, so one model with a ``type`` literal describes them.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, Field, TypeAdapter

from schemas.catalog import EVENT_CONFIG, MAX_PRICE, EntityId, Timestamp
from schemas.errors import parse_message

BehaviourType = Literal["view", "click", "add_to_cart", "purchase"]
BEHAVIOUR_TYPES: tuple[str, ...] = get_args(BehaviourType)
MAX_QUANTITY = 10_000


class UserEvent(BaseModel):
    """One thing a shopper did with one item."""

    model_config = EVENT_CONFIG

    type: BehaviourType
    event_id: EntityId
    occurred_at: Timestamp
    user_id: EntityId
    item_id: EntityId
    quantity: int = Field(default=1, ge=1, le=MAX_QUANTITY)
    price: float | None = Field(default=None, ge=0, le=MAX_PRICE)


BehaviourEvent = UserEvent
"""The message on ``user.events``; an alias so code can name it like ``CatalogEvent``."""

BEHAVIOUR_EVENT_ADAPTER: TypeAdapter[UserEvent] = TypeAdapter(UserEvent)


def parse_behaviour_event(key: bytes | None, value: bytes | None) -> UserEvent:
    """Parse one ``user.events`` message; raises only :class:`~schemas.errors.InvalidEvent`.

    Reason codes: ``invalid_json``, ``schema``, ``key_mismatch`` (a key that is present and is
    not the body's ``user_id``).
    """
    return parse_message(BEHAVIOUR_EVENT_ADAPTER, key, value, _user_id)


def _user_id(event: UserEvent) -> str:
    return event.user_id
