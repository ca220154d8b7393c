"""JSON on the hot paths: item activities, stored statistics, histories and model rows.

orjson, several times faster than the standard library's ``json`` both ways (a 100-entry
co-occurrence text: 11 against 89 us to read, 7 against 120 us to write; bench/README.md).
What orjson refuses and ``json`` takes (lone surrogates, ``NaN``, some integers beyond 64 bits)
is handed to ``json``, and every failure is a ``ValueError``. One difference remains: orjson reads
an integer of more than ~20 digits as a float (``json``: an int); nothing recstream stores holds
one.
Written texts differ from ``json.dumps``'s only in form: compact, non-ASCII as it is (UTF-8),
and ``NaN`` or an infinity as ``null`` (nothing recstream writes holds one).
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any, *, sort_keys: bool = False) -> str:
    """``value`` as one compact JSON text."""
    return dump_bytes(value, sort_keys=sort_keys).decode()


def dump_bytes(value: Any, *, sort_keys: bool = False) -> bytes:
    """``value`` as compact JSON in UTF-8."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    except TypeError:  # a lone surrogate, a key that is not text: as json writes them
        return json.dumps(value, sort_keys=sort_keys, separators=(",", ":")).encode()


def loads(text: str | bytes) -> Any:
    """The value of a JSON text; ``ValueError`` when it is not one (whatever the bytes)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
