"""The AsyncAPI document: the committed copy is what the generator writes, it is AsyncAPI 3.0,
and it names every topic recstream creates, with resolvable references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from schemas.asyncapi import asyncapi_document, asyncapi_yaml, channel_addresses
from stream.kafka.fit import HEADER_KEY_BYTES, HEADER_TRUNCATED, HEADER_VALUE_BYTES
from stream.kafka.topics import all_topics, list_topics
from stream.settings import Settings

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_the_committed_document_is_what_the_generator_writes() -> None:
    """docs/asyncapi.yaml cannot drift from schemas/: regenerate it with
    `recstream schemas export docs` (it writes docs/asyncapi.yaml among the JSON Schemas)."""
    assert COMMITTED.read_text(encoding="utf-8") == asyncapi_yaml(), (
        "docs/asyncapi.yaml is stale: run `recstream schemas export /tmp/s && "
        "cp /tmp/s/asyncapi.yaml docs/`"
    )


def test_the_document_is_asyncapi_3_with_every_topic_recstream_creates() -> None:
    """Valid YAML, asyncapi 3.0.0, one channel per topic of `recstream run all` and of the list
    stage (default names,
    the internal topic's group id as a parameter), and nothing else."""
    document = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "recstream"
    settings = Settings.model_construct()
    topics = set(all_topics(settings)) | set(list_topics(settings))
    assert channel_addresses(document) == topics


def test_recstream_receives_the_inputs_and_sends_the_outputs() -> None:
    """From recstream's point of view: it receives catalogue and behaviour events and sends
    lists and dead letters; the internal activity topic both ways."""
    document = asyncapi_document()
    by_topic: dict[str, set[str]] = {}
    for operation in document["operations"].values():
        address = _resolve(document, operation["channel"]["$ref"])["address"]
        by_topic.setdefault(address, set()).add(operation["action"])
    assert by_topic["catalog.items"] == {"receive"}
    assert by_topic["user.events"] == {"receive"}
    for output in ("items.neighbours", "users.recommendations", "catalog.items.dlq"):
        assert by_topic[output] == {"send"}
    assert by_topic["{groupId}.item-activity"] == {"send", "receive"}


def test_every_reference_resolves_and_every_payload_is_a_message_schema() -> None:
    """No dangling $ref; the messages carry the pydantic models' schemas and the Kafka key."""
    document = asyncapi_document()
    for ref in _refs(document):
        _resolve(document, ref)
    messages = document["components"]["messages"]
    schemas = document["components"]["schemas"]
    assert messages["itemCreated"]["payload"] == {"$ref": "#/components/schemas/ItemCreated"}
    assert schemas["ItemCreated"]["properties"]["item"] == {"$ref": "#/components/schemas/Item"}
    assert schemas["Item"]["properties"]["title"]["maxLength"] == 1_000
    assert set(schemas["UserEvent"]["properties"]["type"]["enum"]) == {
        "view",
        "click",
        "add_to_cart",
        "purchase",
    }
    assert messages["neighbourList"]["bindings"]["kafka"]["key"]["description"] == "item_id"
    assert messages["recommendations"]["bindings"]["kafka"]["key"]["description"] == "user_id"
    headers = messages["deadLetter"]["headers"]["properties"]
    cut = {HEADER_TRUNCATED, HEADER_VALUE_BYTES, HEADER_KEY_BYTES}
    assert {"recstream.error", *cut} <= set(headers)
