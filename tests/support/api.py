"""The HTTP API, served for a test: a real uvicorn server on a free port, a real httpx client."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx

from encoders import Encoder
from stream.http.app import build_app
from stream.http.queries import Queries
from stream.http.readiness import Watched
from stream.http.server import HttpServer
from stream.settings import Settings
from stream.store import VectorStore


@contextmanager
def serving(
    settings: Settings,
    store: VectorStore,
    consumers: Sequence[Watched] = (),
    encoder: Encoder | None = None,
    stopping: threading.Event | None = None,
) -> Iterator[httpx.Client]:
    """The API of a process with these consumers, on 127.0.0.1 and a free port, and a client
    whose base URL is it."""
    server = HttpServer("127.0.0.1", 0)
    queries = Queries(settings, store, encoder)
    server.start(build_app(settings, store, queries, consumers, stopping), queries)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=120) as client:
            yield client
    finally:
        server.stop()


@contextmanager
def taken_port() -> Iterator[int]:
    """A port something listens on, for as long as the context lasts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def free_port() -> int:
    """A port nothing listens on now (for a process that binds it itself)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
