"""One migration or rollback at a time per store: a claim record the others respect.

The claim is a point of ``vector_models`` naming its holder, what it does and when it last
renewed it (a build renews it as it goes). Another migration is refused while the claim is
fresh, and may take it over once its holder has not renewed it for :data:`LEASE_S` (it died).
Taking it is a write then a read back, not an atomic compare-and-set: two migrations started
within the same few milliseconds could both believe they hold it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from stream.errors import Refused
from stream.store import StoredPoint, VectorStore
from stream.store.model_record import MODELS

CLAIM = "migration"
LEASE_S = 600.0
"""A claim not renewed for this long is taken to be a dead migration's."""
RENEW_S = 30.0


class Claimed(Refused):
    """Another migration or rollback holds the store."""


@contextmanager
def claimed(
    store: VectorStore, doing: str, clock: Callable[[], float] = time.time
) -> Iterator[Callable[[], None]]:
    """Hold the store's claim while the block runs; yields ``renew`` (call it often: it writes
    at most every :data:`RENEW_S`). Raises :class:`Claimed` when another holds it."""
    store.ensure_collection(MODELS, 1)
    token = uuid.uuid4().hex
    found = store.retrieve(MODELS, [CLAIM]).get(CLAIM)
    if found is not None and clock() - float(found.payload["renewed_at"]) < LEASE_S:
        held = found.payload
        raise Claimed(
            f"another migration holds the store ({held['doing']}, renewed "
            f"{clock() - float(held['renewed_at']):.0f} s ago): wait for it to end; a claim not "
            f"renewed for {LEASE_S:.0f} s is taken over"
        )
    started = clock()
    last = [started]

    def write() -> None:
        payload = {"token": token, "doing": doing, "started_at": started, "renewed_at": clock()}
        store.upsert(MODELS, [StoredPoint(CLAIM, payload, np.ones(1, dtype=np.float32))])

    def renew() -> None:
        if clock() - last[0] >= RENEW_S:
            last[0] = clock()
            write()

    write()
    back = store.retrieve(MODELS, [CLAIM]).get(CLAIM)
    if back is None or back.payload.get("token") != token:
        raise Claimed("another migration took the store's claim at the same moment: try again")
    try:
        yield renew
    finally:
        mine = store.retrieve(MODELS, [CLAIM]).get(CLAIM)
        if mine is not None and mine.payload.get("token") == token:
            store.delete(MODELS, [CLAIM])
