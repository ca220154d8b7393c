"""structlog configuration: JSON lines (default) or a console renderer, on stderr; and the
logger librdkafka's own lines go through (:func:`librdkafka_logger`), rate-limited."""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
import time
from collections.abc import Callable

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class _StderrLogger:
    """Writes each rendered line to whatever ``sys.stderr`` is *now*: a stream captured at
    configuration time may be closed later (test runners, daemonisers), and a log line must
    never crash a consumer."""

    def msg(self, message: str) -> None:
        # stderr closed or gone: drop the line rather than the process
        with contextlib.suppress(ValueError, OSError):
            print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _stderr_logger(*args: object) -> _StderrLogger:
    return _StderrLogger()


def configure_logging(fmt: str = "json", level: str = "info") -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


class RateLimit:
    """Lets through one occurrence of each distinct message per ``window_s``, and counts the
    others: a broker that is down makes librdkafka repeat the same few lines many times a
    second, for every client of the process."""

    def __init__(self, window_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, int]] = {}
        """Message shape -> (when it was last let through, occurrences held back since)."""

    def admit(self, key: str) -> int | None:
        """None to hold this occurrence back; else how many of the same were held back since
        the last one let through."""
        now = self._clock()
        with self._lock:
            last = self._seen.get(key)
            if last is not None and now - last[0] < self.window_s:
                self._seen[key] = (last[0], last[1] + 1)
                return None
            if len(self._seen) >= _MAX_SHAPES:  # forget shapes not seen for a window
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window_s}
            self._seen[key] = (now, 0)
            return last[1] if last is not None else 0


_MAX_SHAPES = 1_000
_DIGITS = re.compile(r"\d+")
_LIBRDKAFKA_LOG = "recstream.librdkafka"
_LIBRDKAFKA_WINDOW_S = 30.0


def message_shape(message: str) -> str:
    """A message with its numbers blanked: "after 5ms" and "after 7ms" are the same line."""
    return _DIGITS.sub("#", message)


class _ThroughStructlog(logging.Handler):
    """Writes librdkafka's lines as structlog events (``kafka.client_log``), one line per
    distinct message per window, with how many were held back."""

    def __init__(self, limit: RateLimit) -> None:
        super().__init__(logging.DEBUG)
        self._limit = limit
        self._log = structlog.get_logger("librdkafka")

    def emit(self, record: logging.LogRecord) -> None:
        # confluent-kafka logs ("%s [%s] %s", facility, client name, text)
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) == 3:
            facility, client, text = (str(a) for a in args)
        else:
            facility, client, text = "", "", record.getMessage()
        held_back = self._limit.admit(message_shape(f"{facility} {text}"))
        if held_back is None:
            return
        level = record.levelname.lower()
        method = getattr(self._log, level if level in _LEVELS else "warning")
        fields: dict[str, object] = {"facility": facility, "client": client, "message": text}
        if held_back:
            fields["repeated"] = held_back
        method("kafka.client_log", **fields)


def librdkafka_logger() -> logging.Logger:
    """The logger to hand librdkafka (``logger`` in a client's configuration): its lines
    become JSON (or console) log events like recstream's own, at most one per distinct message
    every 30 s, instead of plain text on stderr."""
    logger = logging.getLogger(_LIBRDKAFKA_LOG)
    if not logger.handlers:
        logger.addHandler(_ThroughStructlog(RateLimit(_LIBRDKAFKA_WINDOW_S)))
        logger.setLevel(logging.DEBUG)  # structlog's level filters
        logger.propagate = False
    return logger
