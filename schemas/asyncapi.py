"""The AsyncAPI 3.0 document of recstream's topics and messages (``docs/asyncapi.yaml``).

Generated, never edited by hand: payloads are the pydantic models' JSON Schemas (inputs as
accepted, outputs as written), channels are the topics ``recstream run all`` creates
(``stream.kafka.topics.all_topics``, and the list-work topics of ``RECSTREAM_LIST_STAGE=topic``)
under their default names, operations are what recstream
does on each (``receive`` what it reads, ``send`` what it writes). A test checks that the
committed copy is what this module writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import TypeAdapter

from schemas.activity import ItemActivity
from schemas.behaviour import UserEvent
from schemas.catalog import ItemCreated, ItemDeleted, ItemUpdated
from schemas.errors import (
    ENCODER_REJECTED,
    FUTURE_EVENT,
    INVALID_JSON,
    KEY_MISMATCH,
    MAX_DETAIL_CHARS,
    MISSING_KEY,
    SCHEMA,
    TOO_LARGE,
)
from schemas.outputs import NeighbourList, Recommendations

if TYPE_CHECKING:  # schemas is below stream: imported where the document is made
    from stream.settings import Settings

ASYNCAPI_VERSION = "3.0.0"
CONTRACT_VERSION = "1.0.0"
"""The wire contract's version (``info.version``): raise it when a message changes."""
_KAFKA_BINDING = "0.5.0"
_SCHEMAS = "#/components/schemas/"
_GROUP = "{groupId}"

Mode = Literal["validation", "serialization"]

# name -> (type, mode): inputs are described as accepted, outputs as written.
_PAYLOADS: dict[str, tuple[Any, Mode]] = {
    "ItemCreated": (ItemCreated, "validation"),
    "ItemUpdated": (ItemUpdated, "validation"),
    "ItemDeleted": (ItemDeleted, "validation"),
    "UserEvent": (UserEvent, "validation"),
    "NeighbourList": (NeighbourList, "serialization"),
    "Recommendations": (Recommendations, "serialization"),
    "ItemActivity": (ItemActivity, "validation"),
}


@dataclass(frozen=True)
class _Message:
    name: str
    title: str
    summary: str
    payload: dict[str, Any]
    key: str
    """What the Kafka key holds."""


@dataclass(frozen=True)
class _Channel:
    id: str
    address: str
    setting: str
    """The setting that names the topic."""
    description: str
    key: str
    messages: tuple[str, ...]
    actions: tuple[Literal["send", "receive"], ...]
    compacted: bool = False


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _SCHEMAS + name}


_REASONS = (
    INVALID_JSON,
    SCHEMA,
    KEY_MISMATCH,
    MISSING_KEY,
    TOO_LARGE,
    ENCODER_REJECTED,
    FUTURE_EVENT,
)
_DEAD_LETTER_HEADERS = {
    "type": "object",
    "description": "The original message's own headers are kept beside these (recstream's win "
    "a name clash).",
    "properties": {
        "recstream.error": {
            "type": "string",
            "description": f"Reason code: {', '.join(_REASONS)}.",
        },
        "recstream.detail": {
            "type": "string",
            "maxLength": MAX_DETAIL_CHARS,
            "description": "What was wrong, for a person; never the input, never a secret.",
        },
        "recstream.source": {
            "type": "string",
            "description": "Where the original message was: topic/partition/offset.",
        },
        "recstream.truncated": {
            "type": "string",
            "description": "Only on a dead letter cut to fit the producer's message.max.bytes: "
            "what was cut, comma-separated: headers (the original's own, left out), key, value "
            "(each cut to its first bytes).",
        },
        "recstream.value-bytes": {
            "type": "string",
            "description": "Only when the value was cut: the original value's size in bytes.",
        },
        "recstream.key-bytes": {
            "type": "string",
            "description": "Only when the key was cut: the original key's size in bytes.",
        },
    },
    "required": ["recstream.error", "recstream.detail", "recstream.source"],
}

_MESSAGES = (
    _Message(
        "itemCreated",
        "item.created",
        "A new catalogue item.",
        _ref("ItemCreated"),
        "item_id",
    ),
    _Message(
        "itemUpdated",
        "item.updated",
        "A changed item, carrying the whole item (not a patch).",
        _ref("ItemUpdated"),
        "item_id",
    ),
    _Message(
        "itemDeleted",
        "item.deleted",
        "An item removed from the catalogue.",
        _ref("ItemDeleted"),
        "item_id",
    ),
    _Message(
        "behaviourEvent",
        "Behaviour event",
        "One thing a shopper did with one item: view, click, add_to_cart or purchase.",
        _ref("UserEvent"),
        "user_id",
    ),
    _Message(
        "neighbourList",
        "Neighbour list",
        "An item's current similar items, by cosine score, descending; never the item itself "
        "nor a deleted item.",
        _ref("NeighbourList"),
        "item_id",
    ),
    _Message(
        "neighbourTombstone",
        "Tombstone",
        "A null value: the item was deleted (compaction then drops its list).",
        {"type": "null"},
        "item_id",
    ),
    _Message(
        "recommendations",
        "Recommendations",
        "A shopper's current recommendations, best first, with the components of each score.",
        _ref("Recommendations"),
        "user_id",
    ),
    _Message(
        "itemActivity",
        "Item activity",
        "One item's share of one shopper interaction (internal: the behaviour consumer "
        "repartitions its input by item for the item-stats consumer).",
        _ref("ItemActivity"),
        "item_id",
    ),
    _Message(
        "listWork",
        "List work",
        "Internal (RECSTREAM_LIST_STAGE=topic): what a catalogue change asks of one list, "
        "for the lists consumer, its owner's only writer.",
        {
            "type": "object",
            "properties": {
                "owner": {"type": "string", "description": "The list's item id (the key)."},
                "own": {
                    "type": "boolean",
                    "description": "The owner itself changed: its list is computed and published.",
                },
                "recompute": {
                    "type": "boolean",
                    "description": "The list named an item that changed, left or was deleted (or "
                    "the repair sweep reached it): computed again, published if it differs.",
                },
                "enter": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Items that beat the list's floor as the catalog consumer saw "
                    "them: checked again with the stored vectors.",
                },
            },
            "required": ["owner"],
        },
        "the owner's item id",
    ),
    _Message(
        "deadLetter",
        "Dead letter",
        "An input message that can never be processed: its key and value bytes unchanged, "
        "with headers saying why and from where. `recstream replay-dlq` sends it back after "
        "a fix.",
        {"description": "The original value, unchanged (any bytes, or null)."},
        "the original key, unchanged",
    ),
)


def _channels(topics: Settings) -> list[_Channel]:
    items, events = topics.topic_items, topics.topic_user_events
    activity = topics.topic_item_activity()
    work = topics.topic_list_work()
    return [
        _Channel(
            "catalogItems",
            items,
            "RECSTREAM_TOPIC_ITEMS",
            "Catalogue events, published by the shop (or `recstream backfill items`).",
            "item_id",
            ("itemCreated", "itemUpdated", "itemDeleted"),
            ("receive",),
        ),
        _Channel(
            "catalogItemsDlq",
            topics.dlq_topic(items),
            "RECSTREAM_TOPIC_ITEMS",
            "Catalogue events the catalog consumer could not process.",
            "the original key",
            ("deadLetter",),
            ("send",),
        ),
        _Channel(
            "itemsNeighbours",
            topics.topic_neighbours,
            "RECSTREAM_TOPIC_NEIGHBOURS",
            "Each item's similar items, published for every item whose list changed.",
            "item_id",
            ("neighbourList", "neighbourTombstone"),
            ("send",),
            compacted=True,
        ),
        _Channel(
            "userEvents",
            events,
            "RECSTREAM_TOPIC_USER_EVENTS",
            "Shopper behaviour, published by the shop (or `recstream backfill events`).",
            "user_id",
            ("behaviourEvent",),
            ("receive",),
        ),
        _Channel(
            "userEventsDlq",
            topics.dlq_topic(events),
            "RECSTREAM_TOPIC_USER_EVENTS",
            "Behaviour events the behaviour consumer could not process.",
            "the original key",
            ("deadLetter",),
            ("send",),
        ),
        _Channel(
            "usersRecommendations",
            topics.topic_recommendations,
            "RECSTREAM_TOPIC_RECOMMENDATIONS",
            "Each shopper's recommendations, published for every shopper who did something.",
            "user_id",
            ("recommendations",),
            ("send",),
            compacted=True,
        ),
        _Channel(
            "itemActivity",
            activity,
            "RECSTREAM_GROUP_ID",
            "Internal: the behaviour consumer's events repartitioned by item, read by the "
            "item-stats consumer (popularity, co-occurrence).",
            "item_id",
            ("itemActivity",),
            ("send", "receive"),
        ),
        _Channel(
            "listWork",
            work,
            "RECSTREAM_GROUP_ID",
            "Internal, only with RECSTREAM_LIST_STAGE=topic (the default with a Qdrant server): "
            "list work from the catalog consumers, keyed by list owner, read by the lists "
            "consumer.",
            "the owner's item id",
            ("listWork",),
            ("send", "receive"),
        ),
        _Channel(
            "listWorkDlq",
            topics.dlq_topic(work),
            "RECSTREAM_GROUP_ID",
            "List work the lists consumer could not process.",
            "the original key",
            ("deadLetter",),
            ("send",),
        ),
        _Channel(
            "itemActivityDlq",
            topics.dlq_topic(activity),
            "RECSTREAM_GROUP_ID",
            "Item activities the item-stats consumer could not process.",
            "the original key",
            ("deadLetter",),
            ("send",),
        ),
    ]


def _payload_schemas() -> dict[str, Any]:
    """Every payload's JSON Schema, with the models they share, as ``components.schemas``."""
    schemas: dict[str, Any] = {}
    for name, (tp, mode) in _PAYLOADS.items():
        schema = TypeAdapter(tp).json_schema(mode=mode, ref_template=_SCHEMAS + "{model}")
        for shared, body in schema.pop("$defs", {}).items():
            if schemas.setdefault(shared, body) != body:
                raise ValueError(f"two different schemas are named {shared}")
        schemas[name] = {**schema, "title": name}
    return dict(sorted(schemas.items()))


def _channel_doc(channel: _Channel) -> dict[str, Any]:
    doc: dict[str, Any] = {"address": channel.address, "title": channel.address}
    doc["description"] = (
        f"{channel.description} Key: {channel.key}. The name comes from {channel.setting}"
        + (" (created compacted)." if channel.compacted else ".")
    )
    if _GROUP in channel.address:
        doc["parameters"] = {
            "groupId": {
                "description": "RECSTREAM_GROUP_ID, the consumers' group prefix.",
                "default": "recstream",
            }
        }
    doc["messages"] = {m: {"$ref": f"#/components/messages/{m}"} for m in channel.messages}
    if channel.compacted:
        config = {"cleanup.policy": ["compact"]}
        doc["bindings"] = {
            "kafka": {
                "topic": channel.address,
                "topicConfiguration": config,
                "bindingVersion": _KAFKA_BINDING,
            }
        }
    return doc


def _message_doc(message: _Message) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": message.name,
        "title": message.title,
        "summary": message.summary,
        "contentType": "application/json",
    }
    if message.name == "deadLetter":
        doc["headers"] = _DEAD_LETTER_HEADERS
    doc["payload"] = message.payload
    doc["bindings"] = {
        "kafka": {
            "key": {"type": "string", "description": message.key},
            "bindingVersion": _KAFKA_BINDING,
        }
    }
    return doc


def _operation_id(action: str, channel_id: str) -> str:
    return action + channel_id[0].upper() + channel_id[1:]


def asyncapi_document() -> dict[str, Any]:
    """The document, as a dict, for the topics under their default names."""
    from stream.settings import Settings

    # The default names whatever the environment says, the group id as a channel parameter.
    channels = _channels(Settings.model_construct(group_id=_GROUP))
    operations: dict[str, Any] = {}
    for channel in channels:
        for action in channel.actions:
            who = "recstream reads" if action == "receive" else "recstream writes"
            operations[_operation_id(action, channel.id)] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{channel.id}"},
                "summary": f"{who} {channel.address}.",
                "messages": [
                    {"$ref": f"#/channels/{channel.id}/messages/{m}"} for m in channel.messages
                ],
            }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "recstream",
            "version": CONTRACT_VERSION,
            "description": (
                "Real-time similar items and recommendations for e-commerce catalogues, as "
                "Kafka consumers. JSON, UTF-8, one event per message, the Kafka key is the "
                "entity id. Unknown fields are ignored; missing required fields, wrong types "
                "and values out of range are invalid and go to the topic's dead-letter topic. "
                "Topic names are the defaults; each is a setting."
            ),
        },
        "defaultContentType": "application/json",
        "channels": {c.id: _channel_doc(c) for c in channels},
        "operations": operations,
        "components": {
            "messages": {m.name: _message_doc(m) for m in _MESSAGES},
            "schemas": _payload_schemas(),
        },
    }


def asyncapi_yaml() -> str:
    """The document as YAML text (what ``docs/asyncapi.yaml`` holds)."""
    header = "# Generated by `recstream schemas export` (schemas/asyncapi.py): do not edit.\n"
    body: str = yaml.safe_dump(
        asyncapi_document(), sort_keys=False, allow_unicode=True, width=100, indent=2
    )
    return header + body


def channel_addresses(document: dict[str, Any]) -> set[str]:
    """The topic names a document's channels stand for, parameters at their defaults."""
    out = set()
    for channel in document["channels"].values():
        address = channel["address"]
        for name, parameter in channel.get("parameters", {}).items():
            address = address.replace("{" + name + "}", parameter["default"])
        out.add(address)
    return out
