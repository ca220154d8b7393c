"""Which model made a collection's vectors: recorded at the first start of a process that
encodes into it, checked at every later one.

Vectors of two models are not comparable, even of one dimension: a process that switched models
would write new vectors beside old ones and search across both, silently. So a start with another
model (by the SHA-256 of its files, not its name) is refused until the catalogue is embedded anew
into another store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import structlog

from stream.errors import Refused
from stream.store.base import StoredPoint, StoreError, VectorStore

log = structlog.get_logger(__name__)

MODELS = "vector_models"
"""The collection of records: one point per collection of text vectors, keyed by its name.
Placeholder vectors."""


@dataclass(frozen=True)
class ModelRecord:
    name: str
    digest: str
    """SHA-256 over the model's files (:func:`encoders.digests.model_digest`)."""
    dim: int


class ModelChanged(StoreError, Refused):
    """The collection's vectors were made by another model than the one configured."""


def check_model(store: VectorStore, collection: str, model: ModelRecord) -> None:
    """Record ``model`` for ``collection`` the first time; raise :class:`ModelChanged` when
    another model is recorded for it. A collection written before records existed is taken
    to hold this model's vectors unless its first point names another (``payload["model"]``)."""
    store.ensure_collection(MODELS, 1)
    found = store.retrieve(MODELS, [collection]).get(collection)
    if found is not None:
        recorded = ModelRecord(**{k: found.payload[k] for k in ("name", "digest", "dim")})
        if recorded.digest != model.digest:
            raise ModelChanged(_changed(collection, recorded.name, model))
        return
    first = next(iter(store.scroll(collection, fields=["model"])), None)
    earlier = first.payload.get("model") if first is not None else None
    if earlier not in (None, model.name):
        raise ModelChanged(_changed(collection, str(earlier), model))
    placeholder = np.ones(1, dtype=np.float32)
    payload = {"name": model.name, "digest": model.digest, "dim": model.dim}
    store.upsert(MODELS, [StoredPoint(collection, payload, placeholder)])
    log.info("store.model_recorded", collection=collection, existing=first is not None, **payload)


def _changed(collection: str, recorded: str, model: ModelRecord) -> str:
    return (
        f"the store's {collection!r} vectors were made by another model ({recorded!r}) than "
        f"RECSTREAM_MODEL ({model.name!r}, SHA-256 {model.digest[:12]}...): mixing the two "
        "would give meaningless neighbours. Set RECSTREAM_MODEL (and RECSTREAM_LEXICAL_WEIGHT, "
        "_DIM: the name's +chargrams<dim>@<weight>) back, or re-embed the "
        "catalogue with the new model into an empty store (another RECSTREAM_QDRANT_PATH or "
        "Qdrant server): replay the catalog topic from the start under a new "
        "RECSTREAM_GROUP_ID, or publish it again with `recstream backfill items`"
    )
