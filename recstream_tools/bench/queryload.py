"""A steady load of HTTP queries beside a benchmark's consumers: the API served from the
consumers' own store (as ``recstream run`` serves it), one client asking for similar items of
random catalogue items at a fixed rate until stopped. A request's latency counts from the
moment it was due, so a slow answer delays the ones behind it and shows in their latency too.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Sequence
from typing import Any

import httpx

from encoders import Encoder
from recstream_tools.bench.report import paced, percentiles
from stream.http.app import build_app
from stream.http.queries import Queries
from stream.http.server import HttpServer
from stream.settings import Settings
from stream.store import VectorStore


class QueryLoad:
    """``GET /v1/items/{id}/similar?k=10`` at ``rate`` per second for ids drawn from
    ``item_ids`` (an id not listed yet answers 404, counted apart), from :meth:`start` to
    :meth:`stop`."""

    def __init__(
        self,
        settings: Settings,
        store: VectorStore,
        encoder: Encoder | None,
        item_ids: Sequence[str],
        rate: float,
    ) -> None:
        self.rate = rate
        self.item_ids = list(item_ids)
        self.server = HttpServer("127.0.0.1", 0)  # a free port
        self.queries = Queries(settings, store, encoder)
        self.server.start(build_app(settings, store, self.queries), self.queries)
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, name="query-load", daemon=True)

    def start(self) -> QueryLoad:
        self._thread.start()
        return self

    def _send(self) -> None:
        rng = random.Random(5)
        with httpx.Client(base_url=f"http://127.0.0.1:{self.server.port}", timeout=60) as c:

            def send() -> httpx.Response:
                return c.get(f"/v1/items/{rng.choice(self.item_ids)}/similar", params={"k": 10})

            self.latencies, self.statuses = paced(send, self.rate, math.inf, self._stop)

    def stop(self) -> dict[str, Any]:
        """Stop sending and serving; what was measured."""
        self._stop.set()
        self._thread.join(timeout=120)
        self.server.stop()
        return {
            "endpoint": "GET /v1/items/{id}/similar?k=10",
            "rate_per_s": self.rate,
            "requests": len(self.latencies),
            "statuses": dict(sorted(self.statuses.items())),
            "latency_ms": percentiles(self.latencies),
        }
