"""Generations of the collections a model makes, for ``recstream migrate``.

The items' vectors, the shoppers' profiles and the lists journal come from one model (and
lexical mix). Another model's go into other collections, built beside the served ones:
generation ``n`` is ``items_g<n>``, ``users_g<n>`` and ``item_lists_g<n>`` (generation 0 keeps
the plain names). Every other collection (item statistics, deleted items, the learned model,
the ranking settings) holds no model's vectors and is shared by all generations.

A pointer record, the point ``active`` of the ``vector_models`` collection, names the generation
served and the model settings that made it. Each process reads it at start and, while it runs,
every ``RECSTREAM_GENERATION_CHECK_S`` seconds: when it changes, the process makes the new
generation's model and consumers ready, then the old consumers finish their batches and the new
ones start (:func:`stream.runner.run_consumers`); and each consumer reads it again before it
publishes a batch, dropping the batch when it moved (:meth:`GenerationStore.superseded`). A
store without a pointer serves generation 0 with the configured model.

Each generation has its own consumer groups for the catalog and behaviour topics (``.g<n>``
appended from generation 1): ``recstream migrate`` sets them where the served groups had
committed before it began copying, so the new generation's consumers apply again every event
the copy may have missed (applying one twice is a no-op: items keep their event's stamp,
shoppers the offsets already in their history, item statistics the offsets already counted).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import structlog

from stream.collections import ITEM_LISTS, ITEMS, USERS
from stream.settings import Settings
from stream.store import FieldKind, StoredPoint, VectorStore, Where
from stream.store.base import Hit, Payload, SearchQuery, Vector
from stream.store.model_record import MODELS

log = structlog.get_logger(__name__)

MODEL_MADE = (ITEMS, USERS, ITEM_LISTS)
"""The collections each generation has its own of."""
POINTER = "active"
NUMBERS = "generations"
"""The point of ``vector_models`` with the highest generation number given out."""


@dataclass(frozen=True)
class Generation:
    """One generation: its number and the model settings that made its vectors."""

    number: int
    model: str
    lexical_weight: float
    lexical_dim: int
    previous: int | None = None
    """The generation served before this one (what ``--rollback`` returns to)."""
    switched_at: float | None = None
    earlier: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The model settings of the generations served before, by number (for a rollback)."""

    @classmethod
    def configured(cls, settings: Settings) -> Generation:
        """Generation 0 as the settings describe it (a store without a pointer)."""
        return cls(0, settings.model, settings.lexical_weight, settings.lexical_dim)

    def collection(self, name: str) -> str:
        """The name ``name`` has in this generation."""
        if self.number == 0 or name not in MODEL_MADE:
            return name
        return f"{name}_g{self.number}"

    def settings(self, base: Settings) -> Settings:
        """``base`` with this generation's model, lexical mix and consumer groups."""
        changed = base.model_copy(
            update={
                "model": self.model,
                "lexical_weight": self.lexical_weight,
                "lexical_dim": self.lexical_dim,
            }
        )
        return changed.at_generation(self.number)

    def same_model(self, other: Generation) -> bool:
        return (self.model, self.lexical_weight, self.lexical_dim) == (
            other.model,
            other.lexical_weight,
            other.lexical_dim,
        )


def served(store: VectorStore, settings: Settings) -> Generation:
    """The generation the store's pointer names; without one, the settings' generation 0."""
    found = read_pointer(store)
    return found if found is not None else Generation.configured(settings)


def open_served(settings: Settings) -> tuple[Settings, GenerationStore]:
    """The settings' store seen through its served generation, and that generation's
    settings (for the commands that read it once: train, tune)."""
    from stream.store import open_store

    store = open_store(settings)
    try:
        generation = served(store, settings)
    except BaseException:
        store.close()
        raise
    return generation.settings(settings), GenerationStore(store, generation)


def read_pointer(store: VectorStore, opened: bool = False) -> Generation | None:
    """The generation the store's pointer names (None: never migrated); ``opened``: the
    collection of records is open in this process already (one call fewer)."""
    if not opened:
        store.ensure_collection(MODELS, 1)
    point = store.retrieve(MODELS, [POINTER]).get(POINTER)
    if point is None:
        return None
    fields = Generation.__dataclass_fields__
    return Generation(**{k: v for k, v in point.payload.items() if k in fields})


def write_pointer(store: VectorStore, generation: Generation, stamp: bool = True) -> Generation:
    """Make ``generation`` the served one (stamped now, unless ``stamp`` is False: the same one
    described anew); what was written."""
    stamped = generation
    if stamp:
        stamped = Generation(**{**asdict(generation), "switched_at": time.time()})
    store.ensure_collection(MODELS, 1)
    store.upsert(MODELS, [StoredPoint(POINTER, asdict(stamped), np.ones(1, dtype=np.float32))])
    store.flush()
    return stamped


def reserve(store: VectorStore, served: Generation) -> int:
    """A generation number never given out in this store (so its collections are new, whatever
    an earlier, failed build left)."""
    store.ensure_collection(MODELS, 1)
    found = store.retrieve(MODELS, [NUMBERS]).get(NUMBERS)
    given = int(found.payload["highest"]) if found is not None else 0
    number = max(given, served.number) + 1
    placeholder = np.ones(1, dtype=np.float32)
    store.upsert(MODELS, [StoredPoint(NUMBERS, {"highest": number}, placeholder)])
    return number


class PointerWatch:
    """Tells, every ``every_s`` seconds, whether the served generation is still ``number``."""

    def __init__(self, store: VectorStore, number: int, every_s: float) -> None:
        self.store = store
        self.number = number
        self.every_s = every_s

    def wait_for_switch(self, stop: threading.Event) -> Generation | None:
        """Block until ``stop`` is set (None) or the pointer names another generation (it).
        A store error while reading the pointer is tried again at the next check."""
        failures = 0
        while not stop.wait(self.every_s):
            try:
                found = read_pointer(self.store)
            except Exception as exc:  # a store outage, or a pointer this version cannot read
                failures += 1
                log.warning("generation.pointer_unread", error=str(exc)[:300], times=failures)
                continue
            failures = 0
            if found is not None and found.number != self.number:
                return found
        return None


class GenerationStore:
    """A store seen through one generation: the model-made collections under its names."""

    def __init__(self, inner: VectorStore, generation: Generation) -> None:
        self.inner = inner
        self.generation = generation
        self.exclusive = inner.exclusive
        self._name = generation.collection

    def superseded(self) -> str | None:
        """Why work done on this generation no longer counts: the store serves another one
        (checked before each batch is published, :attr:`stream.loop.BatchConsumer.superseded`)."""
        found = read_pointer(self.inner, opened=True)
        if found is None or found.number == self.generation.number:
            return None
        return f"the store serves generation {found.number} now, not {self.generation.number}"

    def ensure_collection(
        self,
        name: str,
        dim: int,
        indexes: Mapping[str, FieldKind] | None = None,
        lexical: int = 0,
    ) -> None:
        self.inner.ensure_collection(self._name(name), dim, indexes, lexical)

    def sparse_width(self, collection: str) -> int:
        return self.inner.sparse_width(self._name(collection))

    def upsert(self, collection: str, points: Sequence[StoredPoint]) -> None:
        self.inner.upsert(self._name(collection), points)

    def set_payload(self, collection: str, payloads: Mapping[str, Payload]) -> None:
        self.inner.set_payload(self._name(collection), payloads)

    def update_vectors(self, collection: str, vectors: Mapping[str, Vector]) -> None:
        self.inner.update_vectors(self._name(collection), vectors)

    def delete(self, collection: str, keys: Sequence[str]) -> None:
        self.inner.delete(self._name(collection), keys)

    def retrieve(
        self,
        collection: str,
        keys: Sequence[str],
        with_vectors: bool = False,
        fields: Sequence[str] | None = None,
    ) -> dict[str, StoredPoint]:
        return self.inner.retrieve(self._name(collection), keys, with_vectors, fields)

    def search(self, collection: str, queries: Sequence[SearchQuery]) -> list[list[Hit]]:
        return self.inner.search(self._name(collection), queries)

    def keys_where(self, collection: str, where: Where, limit: int | None = None) -> list[str]:
        return self.inner.keys_where(self._name(collection), where, limit)

    def top_by(self, collection: str, field: str, limit: int) -> list[StoredPoint]:
        return self.inner.top_by(self._name(collection), field, limit)

    def scroll(
        self,
        collection: str,
        with_vectors: bool = False,
        fields: Sequence[str] | None = None,
        where: Where | None = None,
    ) -> Iterator[StoredPoint]:
        return self.inner.scroll(self._name(collection), with_vectors, fields, where)

    def count(self, collection: str) -> int:
        return self.inner.count(self._name(collection))

    def drop_collection(self, name: str) -> None:
        self.inner.drop_collection(self._name(name))

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()
