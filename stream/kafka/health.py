"""Whether the Kafka broker can be reached, as librdkafka's consumers see it.

librdkafka retries connections forever and reports through callbacks served by ``consume``:
``error_cb`` says when every broker is down (``_ALL_BROKERS_DOWN``), ``stats_cb`` (every few
seconds) lists each broker connection's state. One :class:`BrokerWatch` per bootstrap address
gathers both for ``/readyz`` and says in the log when the broker goes and comes back.
"""

from __future__ import annotations

import json
import threading
import time

import structlog
from confluent_kafka import KafkaError

from stream.logs import RateLimit, message_shape

log = structlog.get_logger(__name__)

STATS_INTERVAL_MS = 5_000
"""How often a consumer reports its broker connections: how soon ``/readyz`` sees a broker
that came back."""

_DOWN = frozenset({KafkaError._ALL_BROKERS_DOWN})
_CONNECTION = frozenset({KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE})
_errors_limit = RateLimit()


class BrokerWatch:
    """What the consumers of one bootstrap address last said about reaching it."""

    def __init__(self, bootstrap: str, marks: bool = True) -> None:
        self.bootstrap = bootstrap
        self._marks = marks
        """False: only log errors (producers and admin clients, whose idle connections the
        broker may close, which librdkafka reports as every broker down)."""
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._error = ""

    def unreachable(self) -> str | None:
        """Why the broker cannot be reached now (librdkafka's last error), or None."""
        with self._lock:
            return self._error if self._down_since is not None else None

    def on_error(self, err: KafkaError) -> None:
        """librdkafka's ``error_cb``: logs the error (rate-limited); every broker down marks
        the broker unreachable until a consumer reports a connection up again."""
        text = err.str()
        if err.code() in _DOWN and self._marks:
            with self._lock:
                first = self._down_since is None
                if first:
                    self._down_since = time.monotonic()
                self._error = text
            if first:
                log.error(
                    "kafka.broker_unreachable",
                    bootstrap=self.bootstrap,
                    error=text,
                    hint="check RECSTREAM_KAFKA_BOOTSTRAP and that the broker runs",
                )
            return
        held_back = _errors_limit.admit(message_shape(f"{err.code()} {text}"))
        if held_back is None:
            return
        level = "error" if err.fatal() or err.code() not in _CONNECTION else "warning"
        fields: dict[str, object] = {"code": err.name(), "error": text}
        if held_back:
            fields["repeated"] = held_back
        getattr(log, level)("kafka.client_error", bootstrap=self.bootstrap, **fields)

    def on_stats(self, stats: str) -> None:
        """librdkafka's ``stats_cb``: a broker connection that is up clears the mark."""
        brokers = json.loads(stats).get("brokers", {})
        if not any(b.get("state") == "UP" for b in brokers.values()):
            return
        with self._lock:
            down_since, self._down_since = self._down_since, None
        if down_since is not None:
            log.info(
                "kafka.broker_reachable",
                bootstrap=self.bootstrap,
                down_s=round(time.monotonic() - down_since, 1),
            )


_watches: dict[tuple[str, bool], BrokerWatch] = {}
_watches_lock = threading.Lock()


def broker_watch(bootstrap: str, marks: bool = True) -> BrokerWatch:
    """The process's watch of ``bootstrap`` (one per address: tests run several brokers);
    ``marks`` False: the one that only logs (see :class:`BrokerWatch`)."""
    with _watches_lock:
        return _watches.setdefault((bootstrap, marks), BrokerWatch(bootstrap, marks))
