"""List work: what a catalogue change asks of the lists it touches, when lists have one writer
per owner (``RECSTREAM_LIST_STAGE=topic``).

The catalog consumer (keyed by item) writes the changed items and publishes, per list owner, one
message to the internal topic :meth:`~stream.settings.Settings.topic_list_work`, keyed by the
owner's id: ``own`` (the owner itself changed: its list is computed again and published),
``recompute`` (the list named an item that changed, left the lists or was deleted, or the
repair sweep found it other than its fresh top k: computed again, published if it differs)
and ``enter`` (items whose vectors, as the catalog consumer saw them, beat the list's floor:
checked again with the vectors stored when the work is done).
The lists consumer (:mod:`stream.catalog.owners`) owns each owner's record and list.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from schemas.errors import INVALID_JSON, KEY_MISMATCH, SCHEMA, InvalidEvent
from stream.settings import Settings
from stream.store import VectorStore


@dataclass(frozen=True)
class ListWork:
    owner: str
    own: bool = False
    recompute: bool = False
    enter: frozenset[str] = field(default_factory=frozenset)

    def to_json_bytes(self) -> bytes:
        body = {"owner": self.owner, "own": self.own, "recompute": self.recompute}
        return json.dumps({**body, "enter": sorted(self.enter)}).encode()


def list_work(
    own: Iterable[str], recompute: Iterable[str], entries: Mapping[str, Iterable[str]]
) -> list[ListWork]:
    """One message per owner, owners in sorted order."""
    owners: dict[str, ListWork] = {}
    for key in own:
        owners[key] = ListWork(key, own=True)
    for key in recompute:
        owners[key] = ListWork(key, own=key in owners, recompute=True)
    for key, entering in entries.items():
        current = owners.get(key, ListWork(key))
        if not (current.own or current.recompute):
            owners[key] = ListWork(key, enter=current.enter | frozenset(entering))
    return [owners[k] for k in sorted(owners)]


def parse_list_work(key: bytes | None, value: bytes | None) -> ListWork:
    """The message, or :class:`InvalidEvent` (whatever the bytes: this is an input too)."""
    try:
        body = json.loads(value or b"")
    except (ValueError, RecursionError) as exc:
        raise InvalidEvent(INVALID_JSON, f"not JSON: {type(exc).__name__}") from None
    ok = isinstance(body, dict) and isinstance(body.get("owner"), str)
    enter = body.get("enter", []) if ok else None
    if not ok or not isinstance(enter, list) or not all(isinstance(i, str) for i in enter):
        raise InvalidEvent(SCHEMA, "expected {owner: str, own, recompute: bool, enter: [str]}")
    if key is None or key.decode("utf-8", "replace") != body["owner"]:
        raise InvalidEvent(KEY_MISMATCH, "the key must be the owner's id")
    return ListWork(
        body["owner"], bool(body.get("own")), bool(body.get("recompute")), frozenset(enter)
    )


def lists_by_topic(settings: Settings, store: VectorStore) -> bool:
    """Whether lists go through the list-work topic (see the module's text)."""
    if settings.list_stage == "auto":
        return not store.exclusive and not settings.single_writer
    return settings.list_stage == "topic"
