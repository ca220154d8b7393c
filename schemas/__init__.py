"""recstream's messages: pydantic models for the events it reads and the lists it writes."""

from schemas.behaviour import (
    BEHAVIOUR_TYPES,
    BehaviourEvent,
    BehaviourType,
    UserEvent,
    parse_behaviour_event,
)
from schemas.catalog import (
    CatalogEvent,
    Item,
    ItemCreated,
    ItemDeleted,
    ItemUpdated,
    event_item_id,
    parse_catalog_event,
)
from schemas.errors import INVALID_JSON, KEY_MISMATCH, SCHEMA, InvalidEvent
from schemas.export import MESSAGE_NAMES, export_schemas
from schemas.outputs import Neighbour, NeighbourList, Recommendations, RecommendedItem

__all__ = [
    "BEHAVIOUR_TYPES",
    "INVALID_JSON",
    "KEY_MISMATCH",
    "MESSAGE_NAMES",
    "SCHEMA",
    "BehaviourEvent",
    "BehaviourType",
    "CatalogEvent",
    "InvalidEvent",
    "Item",
    "ItemCreated",
    "ItemDeleted",
    "ItemUpdated",
    "Neighbour",
    "NeighbourList",
    "Recommendations",
    "RecommendedItem",
    "UserEvent",
    "event_item_id",
    "export_schemas",
    "parse_behaviour_event",
    "parse_catalog_event",
]
