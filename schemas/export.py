"""JSON Schema files for every message recstream reads or writes, and the AsyncAPI document of
its topics (``recstream schemas export``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter

from schemas.behaviour import UserEvent
from schemas.catalog import CatalogEvent, ItemCreated, ItemDeleted, ItemUpdated
from schemas.outputs import NeighbourList, Recommendations

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# name -> (type, title, mode): inputs are described as accepted, outputs as written.
_MESSAGES: dict[str, tuple[Any, str, Literal["validation", "serialization"]]] = {
    "catalog-event": (CatalogEvent, "CatalogEvent", "validation"),
    "item-created": (ItemCreated, "ItemCreated", "validation"),
    "item-updated": (ItemUpdated, "ItemUpdated", "validation"),
    "item-deleted": (ItemDeleted, "ItemDeleted", "validation"),
    "behaviour-event": (UserEvent, "BehaviourEvent", "validation"),
    "neighbour-list": (NeighbourList, "NeighbourList", "serialization"),
    "recommendations": (Recommendations, "Recommendations", "serialization"),
}
MESSAGE_NAMES: tuple[str, ...] = tuple(_MESSAGES)


def message_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of the message called ``name`` (one of :data:`MESSAGE_NAMES`)."""
    tp, title, mode = _MESSAGES[name]
    schema = TypeAdapter(tp).json_schema(mode=mode)
    return {"$schema": JSON_SCHEMA_DIALECT, **schema, "title": title}


ASYNCAPI_FILE = "asyncapi.yaml"


def export_schemas(directory: Path) -> list[Path]:
    """Write ``<name>.schema.json`` for every message and ``asyncapi.yaml`` (the topics and
    their messages) into ``directory``; return the paths."""
    from schemas.asyncapi import asyncapi_yaml

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in MESSAGE_NAMES:
        path = directory / f"{name}.schema.json"
        text = json.dumps(message_schema(name), indent=2, sort_keys=True, ensure_ascii=False)
        path.write_text(text + "\n", encoding="utf-8")
        paths.append(path)
    path = directory / ASYNCAPI_FILE
    path.write_text(asyncapi_yaml(), encoding="utf-8")
    paths.append(path)
    return paths
