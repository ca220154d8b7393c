"""Building a generation from the served one: every item embedded again from the text stored
beside its vector (or, moving to the sparse layout with the same model and mix, its vector
copied as it is), every shopper's profile computed again from the new vectors.

The copy is a snapshot taken while the consumers keep writing the served generation: what they
change after the consumer groups' offsets read before it began is applied again to the new
generation by its own consumers (:mod:`stream.generations`). Items are copied with their lists
owed and shoppers with their recommendations owed, so the new generation's consumers publish
every item's list and every shopper's recommendations at their start.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import structlog

from encoders import Encoder
from encoders.hybrid import vector_fingerprint, vector_layout
from stream.behaviour.processor import OWED, stored_profile
from stream.catalog.effects import PENDING
from stream.catalog.lists import NO_FLOOR
from stream.collections import ITEMS, USERS, WRITTEN_AT, ensure_collections
from stream.errors import Refused
from stream.generations import Generation, GenerationStore
from stream.ranking.profile import history_from_payload, profile_vector
from stream.settings import Settings
from stream.store import StoredPoint, VectorStore
from stream.store.model_record import ModelRecord, check_model

log = structlog.get_logger(__name__)

PAGE = 256
"""Items embedded (shoppers recomputed) per store write."""
_LISTS = ("nb_ids", "nb_scores", "nb_pending")
"""The served generation's last published lists and list work still owed: the other model's,
so not copied."""


class NoText(Refused):
    """Items were stored before their text was (recstream before 2026-12-05)."""


@dataclass(frozen=True)
class Built:
    items: int
    shoppers: int
    seconds: float
    copied: bool = False
    """The items' vectors copied as they were, none embedded."""


def build(
    settings: Settings,
    store: VectorStore,
    source: Generation,
    target: Generation,
    encoder: Encoder | None,
    progress: Callable[[str, int], None] = lambda stage, n: None,
) -> Built:
    """Fill ``target``'s collections (new ones: see :func:`stream.generations.reserve`) from
    ``source``'s with ``encoder`` (``target``'s model). Raises :class:`NoText` when a served
    item has no stored text. Without ``encoder`` (``target`` makes the vectors ``source``'s
    settings make, in the sparse layout) every item's vector is copied as it is: nothing is
    embedded, and no text is needed."""
    started = time.perf_counter()
    old = GenerationStore(store, source)
    new = GenerationStore(store, target)
    if encoder is not None:
        missing = sum(1 for p in old.scroll(ITEMS, fields=("text",)) if not p.payload.get("text"))
        if missing:
            raise NoText(
                f"{missing} items of the served generation were stored without their text "
                "(recstream before 2026-12-05): publish the catalogue again (`recstream "
                "backfill items`, or replay the catalog topic) before migrating"
            )
    target_settings = target.settings(settings)
    dim, lexical = vector_layout(target_settings)
    ensure_collections(new, dim, lexical)
    name, digest = vector_fingerprint(target_settings)
    check_model(new, target.collection(ITEMS), ModelRecord(name, digest, dim))
    items = 0
    for page in _pages(old.scroll(ITEMS, with_vectors=encoder is None)):
        if encoder is None:
            new.upsert(ITEMS, [_copied(p, dim, name) for p in page])
        else:
            vectors = encoder.encode([str(p.payload["text"]) for p in page])
            new.upsert(
                ITEMS, [_item(p, v, encoder.name) for p, v in zip(page, vectors, strict=True)]
            )
        items += len(page)
        progress("items", items)
    shoppers = 0
    for page in _pages(old.scroll(USERS)):
        new.upsert(USERS, _shoppers(target_settings, new, page, dim))
        shoppers += len(page)
        progress("shoppers", shoppers)
    new.flush()
    seconds = time.perf_counter() - started
    log.info(
        "migrate.built",
        generation=target.number,
        items=items,
        shoppers=shoppers,
        copied=encoder is None,
    )
    return Built(items, shoppers, seconds, copied=encoder is None)


def owe_every_list(settings: Settings, store: VectorStore, generation: Generation) -> int:
    """Mark every item of ``generation`` as owing its lists and every shopper their
    recommendations (its consumers publish them all at their next start): for a generation
    served again after a rollback. How many items."""
    from encoders.hybrid import vector_layout

    view = GenerationStore(store, generation)
    ensure_collections(view, *vector_layout(generation.settings(settings)))
    n = 0
    for page in _pages(view.scroll(ITEMS, fields=("item_id",))):
        view.set_payload(ITEMS, {p.key: {PENDING: True} for p in page})
        n += len(page)
    for page in _pages(view.scroll(USERS, fields=("user_id",))):
        view.set_payload(USERS, {p.key: {OWED: True} for p in page})
    view.flush()
    return n


def _pages(points: Iterator[StoredPoint], size: int = PAGE) -> Iterator[list[StoredPoint]]:
    while page := list(itertools.islice(points, size)):
        yield page


def _item(point: StoredPoint, vector: np.ndarray, model: str) -> StoredPoint:
    payload = {k: v for k, v in point.payload.items() if k not in _LISTS}
    payload.update({"model": model, PENDING: True, WRITTEN_AT: time.time(), "nb_floor": NO_FLOOR})
    return StoredPoint(point.key, payload, vector)


def _copied(point: StoredPoint, dim: int, model: str) -> StoredPoint:
    """:func:`_item` with the item's own vector and model name (``model``, the settings' name,
    where it has none): the same settings made it."""
    if point.vector is None or len(point.vector) != dim:
        length = None if point.vector is None else len(point.vector)
        raise Refused(
            f"item {point.key!r} of the served generation has a vector of length {length}, not "
            f"{dim}: it cannot be copied; migrate to another model or mix to embed every item"
        )
    return _item(point, point.vector, str(point.payload.get("model") or model))


def _shoppers(
    settings: Settings, items: GenerationStore, page: list[StoredPoint], dim: int
) -> list[StoredPoint]:
    histories = {p.key: history_from_payload(p.payload.get("history")) for p in page}
    touched = sorted({i.item_id for h in histories.values() for i in h})
    found = items.retrieve(ITEMS, touched, with_vectors=True)
    vectors = {k: p.vector for k, p in found.items() if p.vector is not None}
    weights = settings.behaviour_weights()
    half_life = settings.profile_half_life_hours
    points = []
    for p in page:
        profile = profile_vector(histories[p.key], vectors, weights, half_life)
        # owed: the behaviour consumer publishes their recommendations from the new profiles
        payload = {**p.payload, "has_profile": profile is not None, OWED: True}
        points.append(StoredPoint(p.key, payload, stored_profile(profile, dim)))
    return points
