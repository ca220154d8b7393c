"""What a batch of catalogue events means for the store: pure decisions, no I/O.

Ordering rule: an event's *stamp* is its ``version`` when both sides have one, else its
``occurred_at``. Within a batch only the newest event per item counts; against the store, an
event strictly older than what is stored (or than the item's deletion) changes nothing. An event
*equal* to the stored stamp is a replay: it is not re-encoded, but the item's lists are
recomputed and compared, so a crash between the store write and the publish heals on replay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.catalog import CatalogEvent, ItemDeleted, event_item_id


@dataclass(frozen=True)
class Stamp:
    version: int | None
    occurred_at: datetime

    def newer_than(self, other: Stamp) -> bool:
        if self.version is not None and other.version is not None and self.version != other.version:
            return self.version > other.version
        return self.occurred_at > other.occurred_at

    def to_payload(self) -> dict[str, Any]:
        return {"version": self.version, "occurred_at": self.occurred_at.isoformat()}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Stamp:
        return cls(payload.get("version"), datetime.fromisoformat(payload["occurred_at"]))

    @classmethod
    def of(cls, event: CatalogEvent) -> Stamp:
        return cls(event.version, event.occurred_at)


@dataclass(frozen=True)
class Received:
    """A valid catalogue event and where it came from; ``text``/``content_hash`` for upserts."""

    event: CatalogEvent
    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes | None = None
    text: str | None = None
    content_hash: str | None = None
    tokens: int = 0
    """The text's token count (for the encoder metrics)."""
    headers: tuple[tuple[str, str | bytes | None], ...] = ()
    """The message's own headers (a dead letter made later keeps them)."""

    @property
    def item_id(self) -> str:
        return event_item_id(self.event)

    @property
    def stamp(self) -> Stamp:
        return Stamp.of(self.event)

    @property
    def is_delete(self) -> bool:
        return isinstance(self.event, ItemDeleted)


def newest_per_item(events: list[Received]) -> dict[str, Received]:
    """The newest event of each item. On equal stamps the later one in the log wins, except that
    an upsert never displaces a deletion (as across batches, a deletion wins a tie)."""
    newest: dict[str, Received] = {}
    for r in events:
        current = newest.get(r.item_id)
        if (
            current is None
            or r.stamp.newer_than(current.stamp)
            or (not current.stamp.newer_than(r.stamp) and (r.is_delete or not current.is_delete))
        ):
            newest[r.item_id] = r
    return newest


@dataclass
class Plan:
    encode: list[Received] = field(default_factory=list)
    """New items and items whose text changed: encode, upsert."""
    refresh: list[Received] = field(default_factory=list)
    """Same text (price, stock, a replay): update the payload, keep the vector."""
    delete: list[Received] = field(default_factory=list)
    stale: list[Received] = field(default_factory=list)
    """Older than what the store holds: nothing to do."""


def plan_batch(
    newest: dict[str, Received],
    stored: dict[str, dict[str, Any]],
    deleted: dict[str, dict[str, Any]],
    model: str,
) -> Plan:
    """Sort each item's newest event into encode / refresh / delete / stale.

    ``stored`` and ``deleted`` map item ids to the payloads of the live point and of the item's
    deletion record (both optional).
    """
    plan = Plan()
    for item_id, r in newest.items():
        current = stored.get(item_id)
        gone = deleted.get(item_id)
        older_than_stored = current is not None and Stamp.from_payload(current).newer_than(r.stamp)
        gone_stamp = Stamp.from_payload(gone) if gone is not None else None
        # a deletion wins over an upsert with the same stamp; an older deletion must not
        # replace the record of a newer one (a later upsert would then come back to life)
        not_after_deletion = (
            gone_stamp is not None and not r.is_delete and not r.stamp.newer_than(gone_stamp)
        )
        older_deletion = gone_stamp is not None and r.is_delete and gone_stamp.newer_than(r.stamp)
        if older_than_stored or not_after_deletion or older_deletion:
            plan.stale.append(r)
        elif r.is_delete:
            plan.delete.append(r)
        elif (
            current is not None
            and current.get("content_hash") == r.content_hash
            and current.get("model") == model
        ):
            plan.refresh.append(r)
        else:
            plan.encode.append(r)
    return plan


def item_payload(r: Received, model: str) -> dict[str, Any]:
    """The stored description of an item (what the store keeps beside its vector)."""
    event = r.event
    assert not isinstance(event, ItemDeleted)
    item = event.item
    return {
        "item_id": item.item_id,
        **r.stamp.to_payload(),
        "title": item.title,
        "brand": item.brand,
        "categories": list(item.categories),
        "price": item.price,
        "currency": item.currency,
        "in_stock": item.in_stock,
        "content_hash": r.content_hash,
        "text": r.text,  # what was embedded: `recstream migrate` embeds it again
        "model": model,
    }
