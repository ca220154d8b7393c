"""uvicorn in a thread beside the consumers: the socket is bound first (so a busy port stops the
process before anything is loaded), the server started once the app exists, stopped with the
process."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Sequence

import structlog
import uvicorn
from fastapi import FastAPI

from encoders import Encoder
from stream.http.app import build_app
from stream.http.queries import Queries
from stream.http.readiness import Watched
from stream.settings import Settings
from stream.store import VectorStore

log = structlog.get_logger(__name__)

_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0


class HttpUnavailable(RuntimeError):
    """The API cannot listen where the settings say (the port is taken, the host unknown)."""


class HttpServer:
    """Serves an app on ``host``:``port`` from a thread (port 0: any free port, see ``port``)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self._requested = port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._on_stop: list[Queries] = []

    @property
    def port(self) -> int:
        """The port listened on (the one chosen when 0 was asked for)."""
        assert self._socket is not None, "bind() first"
        return int(self._socket.getsockname()[1])

    def bind(self) -> None:
        """Take the address now; raises :class:`HttpUnavailable` naming the setting to change."""
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                self.host, self._requested, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            raise HttpUnavailable(
                f"cannot listen on {self.host}:{self._requested} ({exc}): check "
                "RECSTREAM_HTTP_HOST (--http-host)"
            ) from exc
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen()  # claimed now: another process cannot bind it meanwhile
        except OSError as exc:
            sock.close()
            raise HttpUnavailable(
                f"cannot listen on {self.host}:{self._requested} ({exc.strerror or exc}): "
                "choose another RECSTREAM_HTTP_PORT (--http-port), or 0 to serve no HTTP"
            ) from exc
        self._socket = sock

    def start(self, app: FastAPI, queries: Queries | None = None) -> None:
        """Serve ``app`` until :meth:`stop` (``queries`` is closed then). When an app is served
        already, ``app`` replaces it on the same listening socket: a connection made meanwhile
        waits in the socket's queue instead of being refused."""
        if self._socket is None:
            self.bind()
        assert self._socket is not None
        self._stop_serving()
        if queries is not None:
            self._on_stop.append(queries)
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=5
        )
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(
            # a duplicate: uvicorn closes the sockets it served at its end, the listening one stays
            target=server.run,
            kwargs={"sockets": [self._socket.dup()]},
            name="http",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise HttpUnavailable(f"the HTTP server did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        log.info("http.started", host=self.host, port=self.port)

    def stop(self) -> None:
        """Stop serving (requests under way get a few seconds to finish) and release the port."""
        self._stop_serving()
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
            self._socket = None

    def _stop_serving(self) -> None:
        """Stop the app served (requests under way get a few seconds), keeping the socket."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(_STOP_TIMEOUT_S)
            log.info("http.stopped", host=self.host)
        self._server = self._thread = None
        for queries in self._on_stop:
            queries.close()
        self._on_stop.clear()


def api_server(
    settings: Settings,
    store: VectorStore,
    consumers: Sequence[Watched] = (),
    encoder: Encoder | None = None,
    server: HttpServer | None = None,
    stopping: threading.Event | None = None,
) -> HttpServer:
    """Start the API of a process (its consumers, its encoder if it has one, the event set when
    it is told to stop) on the settings' address, or on ``server`` when given (bound already)."""
    server = server or HttpServer(settings.http_host, settings.http_port)
    queries = Queries(settings, store, encoder)
    server.start(build_app(settings, store, queries, consumers, stopping), queries)
    return server
