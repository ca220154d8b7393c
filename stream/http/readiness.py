"""Whether a process can do its work: it is not stopping, the Kafka broker can be reached,
every consumer has joined its group and is not retrying a failing batch, and the store
answers."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

import structlog

from stream.collections import ITEMS
from stream.kafka.health import broker_watch
from stream.loop import Progress
from stream.settings import Settings
from stream.store import VectorStore

log = structlog.get_logger(__name__)


class Watched(Protocol):
    """What the HTTP API reads of a running consumer (a :class:`stream.loop.BatchConsumer`)."""

    topic: str
    paused: bool
    progress: Progress
    settings: Settings

    @property
    def joined(self) -> bool: ...

    @property
    def buffered(self) -> int: ...

    def oldest_unfinished_at(self) -> float | None: ...


def not_ready(
    consumers: Sequence[Watched], store: VectorStore, stopping: threading.Event | None = None
) -> str | None:
    """Why the process is not ready (every reason, joined with "; "), or None when it is.
    ``stopping``: set once the process was told to stop (it finishes its batches meanwhile)."""
    reasons = []
    if stopping is not None and stopping.is_set():
        reasons.append("the process is stopping")
    for bootstrap in sorted({c.settings.kafka_bootstrap for c in consumers}):
        error = broker_watch(bootstrap).unreachable()
        if error is not None:
            reasons.append(
                f"the Kafka broker is unreachable at {bootstrap} ({error}): check "
                "RECSTREAM_KAFKA_BOOTSTRAP"
            )
    for c in consumers:
        if not c.joined:
            reasons.append(f"the {c.topic} consumer has not joined its group yet")
        elif c.paused:
            reasons.append(f"the {c.topic} consumer is retrying a failing batch")
    try:
        store.count(ITEMS)
    except Exception as exc:
        # the engine's message may name the server: logged, not shown to the caller
        log.warning("http.store_unavailable", error=f"{type(exc).__name__}: {exc}"[:300])
        reasons.append(f"the vector store does not answer ({type(exc).__name__})")
    return "; ".join(reasons) or None
