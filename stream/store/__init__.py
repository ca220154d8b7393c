"""Vector store adapters behind one protocol: the embedded Qdrant Edge and a Qdrant server."""

from __future__ import annotations

from stream.settings import Settings
from stream.store.base import (
    DimensionMismatch,
    FieldKind,
    Hit,
    SearchQuery,
    StoredPoint,
    StoreError,
    StoreLocked,
    StoreUnavailable,
    VectorStore,
    Where,
    point_id,
)


def open_store(settings: Settings) -> VectorStore:
    """The store the settings name: a Qdrant server when ``qdrant_url`` is set, else embedded."""
    if settings.qdrant_url:
        from stream.store.server import ServerStore

        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return ServerStore(url=settings.qdrant_url, api_key=key)
    from stream.store.edge import EdgeStore

    return EdgeStore(settings.qdrant_path)


__all__ = [
    "DimensionMismatch",
    "FieldKind",
    "Hit",
    "SearchQuery",
    "StoreError",
    "StoreLocked",
    "StoreUnavailable",
    "StoredPoint",
    "VectorStore",
    "Where",
    "open_store",
    "point_id",
]
