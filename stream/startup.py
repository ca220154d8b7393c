"""What a command checks and says before it starts its work: that the Kafka broker and a Qdrant
server answer (else one line naming the setting to check, not a traceback), which
``RECSTREAM_*`` variables are no setting (a typo is otherwise ignored silently), and one log
line saying what the process runs against."""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import structlog

from stream.errors import Unreachable
from stream.settings import Settings

log = structlog.get_logger(__name__)

PREFIX = "RECSTREAM_"
_NOT_SETTINGS = ("RECSTREAM_TEST_",)
"""Variables read by the test suite, not by recstream."""
_RETRY_S = 0.5


def misspelled_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """Each ``RECSTREAM_*`` variable that names no setting, with the closest setting's variable
    (None when nothing is close)."""
    known = [name.upper() for name in Settings.model_fields]
    found = []
    for variable in sorted(environ):
        name = variable.removeprefix(PREFIX)
        if name == variable or name in known or variable.startswith(_NOT_SETTINGS):
            continue
        # compared without the prefix they all share, which would make any two names alike
        closest = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        found.append((variable, PREFIX + closest[0] if closest else None))
    return found


def warn_misspelled(environ: Mapping[str, str]) -> None:
    """A warning for each variable :func:`misspelled_variables` finds (never its value)."""
    for name, closest in misspelled_variables(environ):
        log.warning(
            "settings.unknown_variable",
            variable=name,
            did_you_mean=closest,
            hint="not a recstream setting: it is ignored",
        )


def store_location(settings: Settings) -> str:
    """The Qdrant server's URL without credentials or query, or the embedded store's path."""
    if not settings.qdrant_url:
        return f"embedded:{settings.qdrant_path}"
    parts = urlsplit(settings.qdrant_url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def search_mode(settings: Settings) -> str:
    """Where the catalog consumer computes lists: ``auto`` resolved as the consumer does."""
    if settings.neighbour_search != "auto":
        return settings.neighbour_search
    return "store" if settings.qdrant_url else "memory"


def log_start(settings: Settings, command: str) -> None:
    """One line with what the process runs against (no secret: the URL loses any credentials)."""
    device = settings.device
    if device == "auto":
        import torch

        device = f"auto ({'cuda' if torch.cuda.is_available() else 'cpu'})"
    log.info(
        "recstream.starting",
        command=command,
        broker=settings.kafka_bootstrap,
        store=store_location(settings),
        model=settings.model,
        device=device,
        search=search_mode(settings),
    )


def _until_answered(
    check: Callable[[float], Any],
    timeout_s: float,
    final: Callable[[Exception], bool] = lambda exc: False,
) -> Exception | None:
    """Calls ``check(seconds left)`` until it returns or ``timeout_s`` passed, or it raises an
    error waiting cannot cure (``final``); the last error."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        try:
            check(max(0.5, left))
            return None
        except Exception as exc:
            if final(exc) or time.monotonic() + _RETRY_S >= deadline:
                return exc
            time.sleep(_RETRY_S)


def check_broker(settings: Settings) -> None:
    """Wait up to ``startup_timeout_s`` for the broker to answer a metadata request; raise
    :class:`Unreachable` naming ``RECSTREAM_KAFKA_BOOTSTRAP`` if it does not."""
    from confluent_kafka.admin import AdminClient

    from stream.kafka.config import client_config

    admin = AdminClient(client_config(settings))
    failure = _until_answered(
        lambda left: admin.list_topics(timeout=left), settings.startup_timeout_s
    )
    if failure is None:
        return
    detail = failure.args[0].str() if failure.args and hasattr(failure.args[0], "str") else failure
    raise Unreachable(
        f"the Kafka broker at {settings.kafka_bootstrap} did not answer in "
        f"{settings.startup_timeout_s:g} s ({detail})",
        "RECSTREAM_KAFKA_BOOTSTRAP"
        + (
            " and the RECSTREAM_KAFKA_SASL_* / _SSL_* settings"
            if settings.kafka_security_protocol != "PLAINTEXT"
            else ""
        ),
    )


def check_store(settings: Settings) -> None:
    """With a Qdrant server, wait up to ``startup_timeout_s`` for it to answer; raise
    :class:`Unreachable` naming ``RECSTREAM_QDRANT_URL`` if it does not. (The embedded store
    is opened, and its lock checked, by the command itself.)"""
    if not settings.qdrant_url:
        return
    from qdrant_client import QdrantClient

    key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
    timeout = max(1, round(settings.startup_timeout_s))
    client = QdrantClient(
        url=settings.qdrant_url, api_key=key, timeout=timeout, check_compatibility=False
    )
    try:
        failure = _until_answered(
            lambda left: client.get_collections(), settings.startup_timeout_s, _refused_key
        )
    finally:
        client.close()
    if failure is None:
        return
    if _refused_key(failure):
        raise Unreachable(
            f"the Qdrant server at {store_location(settings)} refused the API key",
            "RECSTREAM_QDRANT_API_KEY",
        )
    # the client's message may repeat the URL, never the key (a header)
    detail = f"{type(failure).__name__}: {failure}"[:200]
    raise Unreachable(
        f"the Qdrant server at {store_location(settings)} did not answer in "
        f"{settings.startup_timeout_s:g} s ({detail})",
        "RECSTREAM_QDRANT_URL"
        + (" and RECSTREAM_QDRANT_API_KEY" if settings.qdrant_api_key else ""),
    )


def _refused_key(exc: Exception) -> bool:
    return getattr(exc, "status_code", None) in (401, 403)
