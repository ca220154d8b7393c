"""Dead letters cut to fit what the producer accepts.

A dead letter carries the failed message's bytes; one larger than the producer's
``message.max.bytes`` (a ``too_large`` message, typically) would be refused on every retry, and
the consumer would stop on the same message after every restart. It is cut instead, keeping the
first bytes, with headers saying what was cut and the original sizes.
"""

from __future__ import annotations

from stream.kafka.dlq import HEADER_ERROR, OWN_HEADERS

HEADER_TRUNCATED = "recstream.truncated"
"""On a dead letter cut to fit: what was cut, comma-separated: ``headers`` (the failed message's
own headers, left out), ``key``, ``value``."""
HEADER_VALUE_BYTES = "recstream.value-bytes"
"""On a dead letter whose value was cut: the original value's size in bytes (decimal)."""
HEADER_KEY_BYTES = "recstream.key-bytes"
"""On a dead letter whose key was cut: the original key's size in bytes (decimal)."""

Headers = list[tuple[str, str | bytes | None]]

_CUT_NAMES = frozenset({HEADER_TRUNCATED, HEADER_VALUE_BYTES, HEADER_KEY_BYTES})
_RECORD_OVERHEAD = 1_024
"""Room for the record and batch framing librdkafka counts against ``message.max.bytes``."""
_CUT_HEADERS = 128
"""Room for the headers a cut adds."""


def is_dead_letter(headers: Headers | None) -> bool:
    """Whether a record to publish is a dead letter (it carries the reason header)."""
    return any(name == HEADER_ERROR for name, _ in headers or ())


def fit_dead_letter(
    key: bytes | None, value: bytes | None, headers: Headers, limit: int
) -> tuple[bytes | None, bytes | None, Headers]:
    """A dead letter's record, whole if it fits in ``limit`` bytes (the producer's
    ``message.max.bytes``), else with its value (and, if the key alone takes more than half the
    room, its key) cut to their first bytes, and headers saying what was cut and the original
    sizes. The failed message's own headers are kept unless they take more than a quarter of
    the limit."""
    if _size(key) + _size(value) + _headers_size(headers) + _RECORD_OVERHEAD <= limit:
        return key, value, headers
    headers = [(name, v) for name, v in headers if name not in _CUT_NAMES]
    cut: list[str] = []
    if _headers_size(headers) > limit // 4:
        cut.append("headers")
        headers = [(name, v) for name, v in headers if name in OWN_HEADERS]
    room = max(0, limit - _RECORD_OVERHEAD - _CUT_HEADERS - _headers_size(headers))
    sizes: Headers = []
    if key is not None and len(key) > room // 2:
        cut.append("key")
        sizes.append((HEADER_KEY_BYTES, str(len(key)).encode()))
        key = key[: room // 2]
    if value is not None and len(value) > room - _size(key):
        cut.append("value")
        sizes.append((HEADER_VALUE_BYTES, str(len(value)).encode()))
        value = value[: room - _size(key)]
    return key, value, [*headers, (HEADER_TRUNCATED, ",".join(cut).encode()), *sizes]


def _size(data: bytes | None) -> int:
    return 0 if data is None else len(data)


def _headers_size(headers: Headers) -> int:
    return sum(
        len(name.encode()) + len(v.encode() if isinstance(v, str) else v or b"")
        for name, v in headers
    )
