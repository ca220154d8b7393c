"""Hostile input for both input topics, generated deterministically from a seed.

Each :class:`Case` is one Kafka message (key and value bytes) with what the contract says must
happen to it: ``"ok"`` (a valid event, to be processed) or the dead-letter reason code. The
expectations follow the README's rules, not the code under test:

- a value larger than ``max_message_bytes`` is ``too_large`` whatever it holds;
- a null value, bytes that are not UTF-8 or not JSON, NaN/Infinity literals and nesting too deep
  (the contract gives no number; 300+ levels here) are ``invalid_json``;
- valid JSON that is not a valid event (unknown type, missing or mistyped fields, a limit
  exceeded) is ``schema``;
- a valid body whose Kafka key is present and differs from its id is ``key_mismatch``;
- anything within the limits is valid: Chinese and mixed-script text, a 1,000-character word as
  a title, a 19,000-character word as a description, control characters inside a title (they are
  cleaned from the embedded text), the text ``NaN`` inside a string, large or deeply (but not too
  deeply) nested unknown fields.

Bad messages are spread evenly over the kinds below (round robin, parameters drawn from the
seed), so a run of 2,000 covers every kind many times.
"""

from __future__ import annotations

import json
import random
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recstream_tools.sample_catalog import sample_items

OK = "ok"
INVALID_JSON = "invalid_json"
SCHEMA = "schema"
KEY_MISMATCH = "key_mismatch"
TOO_LARGE = "too_large"
REASONS = frozenset({INVALID_JSON, SCHEMA, KEY_MISMATCH, TOO_LARGE, "encoder_rejected"})
"""The documented dead-letter reason codes."""

ITEMS = "items"
EVENTS = "events"
MAX_WIRE_BYTES = 900_000
"""No message is larger than this (the broker's limit is about 1 MB)."""

_TIME = "2026-11-22T10:00:00Z"
_INVALID_UTF8 = (
    b"\xff",
    b"\xfe\xff",
    b"\xc0\x80",  # overlong NUL
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xe4\xb8",  # a truncated 3-byte sequence
    b"\x80",
    b"\xf8\x88\x80\x80\x80",  # a 5-byte form
)
_CHINESE = (
    "纯棉圆领短袖T恤 男款 夏季透气",
    "不锈钢保温杯 500毫升 真空双层",
    "无线蓝牙耳机 降噪 长续航",
    "儿童益智积木玩具 300块",
    "有机绿茶 特级 明前龙井 250克",
    "实木书桌 简约现代 家用写字台",
)
# Confusable characters (en dash, fullwidth letters) are the point here, hence the noqa.
_MIXED = (
    "Café crème – 咖啡 ☕ Кофе قهوة कॉफ़ी",  # noqa: RUF001
    "Ünïcödé T-shirt 👕 футболка 티셔츠",
    "\u202eRTL override\u202c sandals サンダル",
    "Zalgo t̷̢̛e̸͇͝x̶̡̛t̵̨̛ mug",
    "Ελληνικό ελαιόλαδο 1L עברית",
    "Ｆｕｌｌｗｉｄｔｈ　ｓｎｅａｋｅｒｓ 运动鞋",  # noqa: RUF001
)


@dataclass(frozen=True)
class Case:
    """One message and its fate: ``expect`` is ``"ok"`` or a dead-letter reason code."""

    topic: str
    """``items`` (catalogue) or ``events`` (behaviour)."""
    key: bytes | None
    value: bytes | None
    expect: str
    kind: str
    entity: str = ""
    """Valid cases: the item id or user id."""
    event_id: str = ""
    title: str | None = None
    """Valid catalogue upserts: the title as stored (stripped); None for a deletion."""


Made = tuple[bytes | None, bytes | None, str]
Maker = Callable[[random.Random, int], Made]


def _dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def _words(rng: random.Random, n: int) -> str:
    return " ".join(
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(n)
    )


class _Catalogue:
    """Bodies of catalogue events built on realistic sample items."""

    def __init__(self, seed: int) -> None:
        self.items = sample_items(97, seed=seed)

    def item(self, rng: random.Random, item_id: str) -> dict[str, Any]:
        return {**rng.choice(self.items), "item_id": item_id}

    def upsert(self, item: dict[str, Any], n: int, **top: Any) -> dict[str, Any]:
        return {
            "type": "item.created",
            "event_id": f"ev-{n}",
            "occurred_at": _TIME,
            "version": 1,
            **top,
            "item": item,
        }


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``body`` with ``path`` (``a.b``) set; the value ``_DROP`` removes the field."""
    out = json.loads(json.dumps(body))
    target = out
    *parents, last = path.split(".")
    for p in parents:
        target = target[p]
    if value is _DROP:
        target.pop(last, None)
    else:
        target[last] = value
    return out


_DROP = object()


def _nested(rng: random.Random, depth: int) -> str:
    if rng.random() < 0.5:
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


# ---------------------------------------------------------------------------------------------
# Bad messages common to both topics: they fail before the body's meaning is looked at.


def _garbage_makers(valid: Callable[[random.Random, int], tuple[bytes, bytes]]) -> list[Maker]:
    """Makers of invalid bytes around ``valid`` (which gives a valid (key, value))."""

    def invalid_utf8(rng: random.Random, n: int) -> Made:
        key, value = valid(rng, n)
        # inside the first string value: a place where only the encoding is wrong
        at = value.index(b'": "') + 4
        return key, value[:at] + rng.choice(_INVALID_UTF8) + value[at:], INVALID_JSON

    def other_encoding(rng: random.Random, n: int) -> Made:
        key, value = valid(rng, n)
        text = value.decode()
        choice = rng.randrange(3)
        if choice == 0:
            return key, text.encode("utf-16"), INVALID_JSON
        if choice == 1:
            return key, b"\xef\xbb\xbf" + value, INVALID_JSON  # a BOM is not JSON
        body = json.loads(text)
        body["note"] = rng.choice(_CHINESE)
        return key, json.dumps(body, ensure_ascii=False).encode("gbk"), INVALID_JSON

    def truncated(rng: random.Random, n: int) -> Made:
        key, value = valid(rng, n)
        return key, value[: rng.randrange(len(value))], INVALID_JSON

    def trailing(rng: random.Random, n: int) -> Made:
        key, value = valid(rng, n)
        tail = rng.choice([b"x", b"}", b"{}", b",", b"\x00", b" {}", b"\n" + value])
        return key, value + tail, INVALID_JSON

    def not_json(rng: random.Random, n: int) -> Made:
        key, _ = valid(rng, n)
        value = rng.choice(
            [
                b"{'type': 'item.created'}",
                b"{type: view}",
                b'// a comment\n{"type": "view"}',
                b'{"a": 1,}',
                b"[1, 2,",
                b"undefined",
                b"True",
                b"nul",
                b"<event type='view'/>",
                b"\x00\x00\x00\x00",
                b"@" + "".join(rng.choices(string.printable, k=rng.randint(1, 200))).encode(),
                b"\xff" + rng.randbytes(rng.randint(1, 2_000)),
            ]
        )
        return key, value, INVALID_JSON

    def null_or_empty(rng: random.Random, n: int) -> Made:
        key, _ = valid(rng, n)
        return key, rng.choice([None, b"", b"   ", b"\n", b"\t\r\n "]), INVALID_JSON

    def nan_infinity(rng: random.Random, n: int) -> Made:
        key, value = valid(rng, n)
        literal = rng.choice([b"NaN", b"Infinity", b"-Infinity"])
        body = value.rstrip(b"}")
        closing = value[len(body) :]
        # where a number belongs, or in an unknown field: either way not JSON
        if rng.random() < 0.5:
            return key, body + b', "price": ' + literal + closing, INVALID_JSON
        return key, body + b', "extra": [1, ' + literal + b"]" + closing, INVALID_JSON

    def deep_nesting(rng: random.Random, n: int) -> Made:
        key, value = valid(rng, n)
        depth = 10_000 if rng.random() < 0.5 else rng.randint(300, 10_000)
        nested = _nested(rng, depth).encode()
        if rng.random() < 0.3:
            return key, nested, INVALID_JSON
        body = value.rstrip(b"}")
        return key, body + b', "extra": ' + nested + value[len(body) :], INVALID_JSON

    def wrong_top_level(rng: random.Random, n: int) -> Made:
        key, value = valid(rng, n)
        choice = rng.choice(
            [b"null", b"[]", b"[" + value + b"]", b'"view"', b"42", b"-0.5", b"true", b"{}"]
        )
        return key, choice, SCHEMA

    return [
        invalid_utf8,
        other_encoding,
        truncated,
        trailing,
        not_json,
        null_or_empty,
        nan_infinity,
        deep_nesting,
        wrong_top_level,
    ]


def _key_makers(valid: Callable[[random.Random, int], tuple[bytes, bytes]]) -> list[Maker]:
    def key_mismatch(rng: random.Random, n: int) -> Made:
        key, value = valid(rng, n)
        text = key.decode()
        wrong = rng.choice(
            [
                f"other-{n}".encode(),
                b"",
                key + b" ",
                b" " + key,
                key.upper() if key.upper() != key else key + b"X",
                b"\xff" + key,  # not UTF-8
                text.encode("gbk", "replace") + b"\x81",
                key * 2,
            ]
        )
        return wrong, value, KEY_MISMATCH

    def key_not_normalised(rng: random.Random, n: int) -> Made:
        # the body's id is NFC, the key the same text in NFD: different bytes
        key, value = valid(rng, n)
        nfc = key.decode()
        nfd = unicodedata.normalize("NFD", nfc)
        assert nfd != nfc, "valid() must give ids with composed characters"
        return nfd.encode(), value, KEY_MISMATCH

    return [key_mismatch, key_not_normalised]


def _too_large(
    valid: Callable[[random.Random, int], tuple[bytes, bytes]], limit: int, counter: list[int]
) -> Maker:
    def too_large(rng: random.Random, n: int) -> Made:
        key, value = valid(rng, n)
        counter[0] += 1
        # mostly just over the limit; every 16th up to ~900 KB (the broker's limit is ~1 MB)
        if counter[0] % 16 == 0:
            size = rng.randint(MAX_WIRE_BYTES // 2, MAX_WIRE_BYTES - 10_000)
        else:
            size = limit + 1 + rng.randint(0, 2_048)
        body = value.rstrip(b"}")
        closing = value[len(body) :]
        choice = rng.randrange(4)
        if choice == 0:  # a huge unknown string
            pad = size - len(value) - len(b', "extra": ""')
            return key, body + b', "extra": "' + b"x" * max(pad, 0) + b'"' + closing, TOO_LARGE
        if choice == 1:  # a huge unknown array
            count = max((size - len(value)) // 2, 1)
            return key, body + b', "extra": [' + b"1," * count + b"1]" + closing, TOO_LARGE
        if choice == 2:  # invalid JSON too: size is checked first
            return key, b"\xff" * size, TOO_LARGE
        return key, value + b" " * (size - len(value)), TOO_LARGE

    return too_large


# ---------------------------------------------------------------------------------------------
# Catalogue


class _CatalogCases:
    def __init__(self, seed: int, limit: int) -> None:
        self.cat = _Catalogue(seed)
        self.limit = limit
        self._large = [0]

    def valid_bytes(self, rng: random.Random, n: int) -> tuple[bytes, bytes]:
        item_id = f"bad-c-{n}" if rng.random() < 0.8 else f"bad-c-é中-{n}"
        if rng.random() < 0.1:
            body: dict[str, Any] = {
                "type": "item.deleted",
                "event_id": f"ev-{n}",
                "occurred_at": _TIME,
                "version": 2,
                "item_id": item_id,
            }
        else:
            body = self.cat.upsert(self.cat.item(rng, item_id), n)
        return item_id.encode(), _dumps(body)

    def _valid_composed(self, rng: random.Random, n: int) -> tuple[bytes, bytes]:
        item_id = f"bad-c-café-{n}"
        return item_id.encode(), _dumps(self.cat.upsert(self.cat.item(rng, item_id), n))

    def _body(self, rng: random.Random, n: int) -> tuple[bytes, dict[str, Any]]:
        item_id = f"bad-c-{n}"
        return item_id.encode(), self.cat.upsert(self.cat.item(rng, item_id), n)

    def bad_makers(self) -> list[Maker]:
        cat = self

        def wrong_types(rng: random.Random, n: int) -> Made:
            key, body = cat._body(rng, n)
            path, value = rng.choice(
                [
                    ("type", 1),
                    ("type", None),
                    ("event_id", 5),
                    ("occurred_at", 1_795_346_635),
                    ("occurred_at", True),
                    ("version", "1"),
                    ("version", 1.5),
                    ("version", True),
                    ("version", [1]),
                    ("item", "sku"),
                    ("item", []),
                    ("item.item_id", 123),
                    ("item.title", 42),
                    ("item.title", ["a title"]),
                    ("item.title", {"en": "a title"}),
                    ("item.title", False),
                    ("item.title", None),
                    ("item.description", 5),
                    ("item.brand", []),
                    ("item.categories", "A > B"),
                    ("item.categories", [1, 2]),
                    ("item.categories", None),
                    ("item.price", "12.5"),
                    ("item.price", True),
                    ("item.price", [12]),
                    ("item.currency", 978),
                    ("item.in_stock", "yes"),
                    ("item.in_stock", 1),
                    ("item.in_stock", None),
                    ("item.attributes", []),
                    ("item.attributes", "colour=red"),
                    ("item.attributes", {"colour": None}),
                    ("item.attributes", {"colour": ["red"]}),
                    ("item.attributes", {"colour": {"name": "red"}}),
                ]
            )
            return key, _dumps(_set(body, path, value)), SCHEMA

        def missing_field(rng: random.Random, n: int) -> Made:
            key, body = cat._body(rng, n)
            path = rng.choice(
                ["type", "event_id", "occurred_at", "item", "item.item_id", "item.title"]
            )
            return key, _dumps(_set(body, path, _DROP)), SCHEMA

        def unknown_type(rng: random.Random, n: int) -> Made:
            key, body = cat._body(rng, n)
            kind = rng.choice(
                ["item.exploded", "ITEM.CREATED", "item.created ", "", "item.upserted", "view"]
            )
            if rng.random() < 0.3:  # a deletion's body under an upsert's type
                body = {"type": "item.updated", "event_id": "e", "occurred_at": _TIME}
                return key, _dumps({**body, "item_id": key.decode()}), SCHEMA
            return key, _dumps(_set(body, "type", kind)), SCHEMA

        def over_limits(rng: random.Random, n: int) -> Made:
            key, body = cat._body(rng, n)
            path, value = rng.choice(
                [
                    ("item.title", "t" * 1_001),
                    ("item.title", "长" * 1_001),
                    ("item.description", _words(rng, 4_000)[:20_001].ljust(20_001, "x")),
                    ("item.categories", [f"c{i}" for i in range(17)]),
                    ("item.categories", ["c" * 201]),
                    ("item.attributes", {f"k{i}": "v" for i in range(65)}),
                    ("item.attributes", {"k" * 101: "v"}),
                    ("item.attributes", {"k": "v" * 1_001}),
                    ("item.attributes", {"k": float("inf")}),
                    ("item.brand", "b" * 201),
                    ("item.price", -0.01),
                    ("item.price", -1e9),
                    ("item.price", 1e9 + 1),
                    ("item.price", 1e400),
                    ("item.currency", "eur"),
                    ("item.currency", "EURO"),
                    ("version", -1),
                    ("version", 2**63),
                    ("event_id", "e" * 257),
                ]
            )
            raw = _dumps(_set(body, path, value))
            # json.dumps writes inf as the literal Infinity; 1e999 is a JSON number (too big)
            return key, raw.replace(b"Infinity", b"1e999"), SCHEMA

        def long_ids(rng: random.Random, n: int) -> Made:
            item_id = "i" * rng.randint(257, 4_000)
            body = cat.cat.upsert(cat.cat.item(rng, item_id), n)
            return item_id.encode(), _dumps(body), SCHEMA

        def empty_values(rng: random.Random, n: int) -> Made:
            key, body = cat._body(rng, n)
            path, value = rng.choice(
                [
                    ("item.title", ""),
                    ("item.title", "   "),
                    ("item.title", "\u200b\u200b"),
                    ("item.title", "\u3000\u00ad\t"),
                    ("item.title", "\x00\x01"),
                    ("item.item_id", ""),
                    ("item.item_id", "   "),
                    ("event_id", ""),
                    ("item.categories", [""]),
                    ("item.categories", ["   "]),
                    ("item.attributes", {"": "x"}),
                    ("item.attributes", {" ": "x"}),
                    ("type", ""),
                    ("item", {}),
                ]
            )
            return key, _dumps(_set(body, path, value)), SCHEMA

        def control_chars_in_ids(rng: random.Random, n: int) -> Made:
            # inside the id: leading and trailing whitespace (\n, \r, \x85) is stripped first
            ctrl = rng.choice(["\x00", "\x1b", "\x7f", "\x85", "\n", "\x1f"])
            item_id = f"bad-c-{ctrl}{n}"
            body = cat.cat.upsert(cat.cat.item(rng, item_id), n)
            if rng.random() < 0.5:
                body = _set(body, "event_id", f"ev\t{n}")
                body = _set(body, "item.item_id", f"bad-c-{n}")
                return f"bad-c-{n}".encode(), _dumps(body), SCHEMA
            return item_id.encode(), _dumps(body), SCHEMA

        def bad_timestamps(rng: random.Random, n: int) -> Made:
            key, body = cat._body(rng, n)
            stamp = rng.choice(
                [
                    "2026-11-22T10:00:00",  # naive
                    "yesterday",
                    "2026-13-01T00:00:00Z",
                    "",
                    "0000-01-01T00:00:00Z",
                    "9999-12-31T23:00:00-05:00",  # year 10000 in UTC
                    "2026-11-22",
                    "2026-11-22T25:00:00Z",
                ]
            )
            return key, _dumps(_set(body, "occurred_at", stamp)), SCHEMA

        def huge_strings(rng: random.Random, n: int) -> Made:
            key, body = cat._body(rng, n)
            room = cat.limit - len(_dumps(body)) - 64
            word = "w" * min(50_000, room)
            path, value = rng.choice(
                [
                    ("item.title", word),  # one 50,000-character word: over the title limit
                    ("item.description", word),  # and the description limit
                    ("item.title", _words(rng, 2_000)[: rng.randint(1_001, room)]),
                    ("item.description", ("描述" * 20_000)[: rng.randint(20_001, room // 3)]),
                    ("item.brand", "b" * rng.randint(201, room)),
                ]
            )
            return key, _dumps(_set(body, path, value)), SCHEMA

        def huge_arrays(rng: random.Random, n: int) -> Made:
            key, body = cat._body(rng, n)
            count = rng.randint(17, (cat.limit - 4_000) // 8)
            path, value = rng.choice(
                [
                    ("item.categories", [f"c{i % 100}" for i in range(count)]),
                    ("item.attributes", {f"k{i}": i for i in range(count // 2)}),
                ]
            )
            return key, _dumps(_set(body, path, value)), SCHEMA

        garbage = _garbage_makers(self.valid_bytes)
        keys = _key_makers(self.valid_bytes)
        keys[1] = _key_makers(self._valid_composed)[1]
        return [
            *garbage,
            *keys,
            _too_large(self.valid_bytes, self.limit, self._large),
            wrong_types,
            missing_field,
            unknown_type,
            over_limits,
            long_ids,
            empty_values,
            control_chars_in_ids,
            bad_timestamps,
            huge_strings,
            huge_arrays,
        ]

    def valid(self, rng: random.Random, n: int) -> Case:
        """A valid catalogue event for a new item ``ok-c-<n>`` (or a Chinese id)."""
        kinds = [
            "plain",
            "chinese",
            "mixed_scripts",
            "long_token_title",
            "long_token_description",
            "control_chars_in_text",
            "nan_text",
            "unknown_fields",
            "escapes",
            "at_the_limits",
            "update_first",
            "delete_unknown",
        ]
        kind = kinds[n % len(kinds)]
        item_id = f"ok-c-{n}" if kind != "chinese" else f"商品-{n}"
        item = self.cat.item(rng, item_id)
        top: dict[str, Any] = {}
        if kind == "chinese":
            item = {
                **item,
                "title": rng.choice(_CHINESE),
                "brand": "品牌",
                "categories": ["服装"],
                "description": "舒适 " * rng.randint(1, 50),
            }
        elif kind == "mixed_scripts":
            item["title"] = rng.choice(_MIXED) + " " + item["title"]
        elif kind == "long_token_title":
            item["title"] = "  " + rng.choice("ab中") * 1_000 + "  "  # 1,000 once stripped
        elif kind == "long_token_description":
            item["description"] = "d" * 19_000
        elif kind == "control_chars_in_text":
            item["title"] = "Bell\x07 tab\t and\x00 escape\x1b " + item["title"]
            item["description"] = "line\nbreak\r\n\x0bvertical\x0c " + (item["description"] or "")
        elif kind == "nan_text":
            item["title"] = "NaN bread (Infinity pack) " + item["title"]
        elif kind == "unknown_fields":
            item["future_field"] = {"nested": json.loads(_nested(rng, 30))}
            top["schema_version"] = [i for i in range(rng.randint(1, 5_000))]
            top["big_number"] = 1e300
        elif kind == "at_the_limits":
            item["categories"] = [f"Cat {i}" for i in range(16)]
            item["attributes"] = {f"attr-{i}": i * 2**40 for i in range(63)}
            item["attributes"]["huge_int"] = 2**70  # beyond 64 bits: validated as a float
            item["description"] = _words(rng, 4_000)[:20_000]
            item["price"] = 1e9
        elif kind == "escapes":
            item["title"] = rng.choice(_CHINESE) + " \u00e9\u4e2d"
        if kind == "update_first":
            top["type"] = "item.updated"
        if kind == "delete_unknown":
            body: dict[str, Any] = {
                "type": "item.deleted",
                "event_id": f"ok-ev-{n}",
                "occurred_at": _TIME,
                "item_id": item_id,
            }
            return Case(ITEMS, item_id.encode(), _dumps(body), OK, kind, item_id, body["event_id"])
        body = self.cat.upsert(item, n, event_id=f"ok-ev-{n}", **top)
        value = json.dumps(body, ensure_ascii=True).encode() if kind == "escapes" else _dumps(body)
        title = item["title"].strip()
        return Case(ITEMS, item_id.encode(), value, OK, kind, item_id, f"ok-ev-{n}", title)


# ---------------------------------------------------------------------------------------------
# Behaviour


class _BehaviourCases:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._large = [0]

    @staticmethod
    def event(user: str, item: str, n: int, kind: str = "view", **extra: Any) -> dict[str, Any]:
        return {
            "type": kind,
            "event_id": f"ev-{n}",
            "occurred_at": _TIME,
            "user_id": user,
            "item_id": item,
            **extra,
        }

    def valid_bytes(self, rng: random.Random, n: int) -> tuple[bytes, bytes]:
        user = f"bad-u-{n}" if rng.random() < 0.8 else f"bad-u-用户-{n}"
        kind = rng.choice(["view", "click", "add_to_cart", "purchase"])
        return user.encode(), _dumps(self.event(user, f"sku-{n % 50}", n, kind))

    def _valid_composed(self, rng: random.Random, n: int) -> tuple[bytes, bytes]:
        user = f"bad-u-josé-{n}"
        return user.encode(), _dumps(self.event(user, "sku-1", n))

    def bad_makers(self) -> list[Maker]:
        def body(rng: random.Random, n: int) -> tuple[bytes, dict[str, Any]]:
            user = f"bad-u-{n}"
            return user.encode(), self.event(user, f"sku-{n % 50}", n, "purchase", quantity=1)

        def wrong_types(rng: random.Random, n: int) -> Made:
            key, b = body(rng, n)
            path, value = rng.choice(
                [
                    ("type", 1),
                    ("type", ["view"]),
                    ("event_id", 7),
                    ("user_id", 5),
                    ("item_id", []),
                    ("item_id", None),
                    ("quantity", "1"),
                    ("quantity", 1.0),
                    ("quantity", True),
                    ("quantity", None),
                    ("price", "9.99"),
                    ("price", True),
                    ("occurred_at", 1_795_346_635),
                ]
            )
            return key, _dumps(_set(b, path, value)), SCHEMA

        def missing_field(rng: random.Random, n: int) -> Made:
            key, b = body(rng, n)
            path = rng.choice(["type", "event_id", "occurred_at", "user_id", "item_id"])
            return key, _dumps(_set(b, path, _DROP)), SCHEMA

        def unknown_type(rng: random.Random, n: int) -> Made:
            key, b = body(rng, n)
            kind = rng.choice(["wishlist", "VIEW", "", "purchase ", "item.created", "refund"])
            return key, _dumps(_set(b, "type", kind)), SCHEMA

        def bad_quantities(rng: random.Random, n: int) -> Made:
            key, b = body(rng, n)
            path, value = rng.choice(
                [
                    ("quantity", 0),
                    ("quantity", -1),
                    ("quantity", -rng.randint(2, 10**6)),
                    ("quantity", 10_001),
                    ("quantity", 2**64),
                    ("quantity", -(2**70)),
                    ("price", -1),
                    ("price", -0.01),
                    ("price", 1e9 + 1),
                    ("price", 1e999),
                ]
            )
            raw = _dumps(_set(b, path, value)).replace(b"Infinity", b"1e999")
            return key, raw, SCHEMA

        def empty_values(rng: random.Random, n: int) -> Made:
            key, b = body(rng, n)
            path, value = rng.choice(
                [
                    ("user_id", ""),
                    ("user_id", "   "),
                    ("item_id", ""),
                    ("event_id", " "),
                    ("type", None),
                    ("item_id", "x" * 257),
                ]
            )
            return key, _dumps(_set(b, path, value)), SCHEMA

        def control_chars_in_ids(rng: random.Random, n: int) -> Made:
            key, b = body(rng, n)
            path = rng.choice(["item_id", "event_id", "user_id"])
            ctrl = rng.choice(["\x00", "\x1b", "\x7f", "\x9f", "\r"])
            value = f"id-{ctrl}-{n}"
            if path == "user_id":
                key = value.encode()
            return key, _dumps(_set(b, path, value)), SCHEMA

        def bad_timestamps(rng: random.Random, n: int) -> Made:
            key, b = body(rng, n)
            stamp = rng.choice(
                ["2026-11-22T10:00:00", "now", "", "10000-01-01T00:00:00Z", "2026-02-30T00:00:00Z"]
            )
            return key, _dumps(_set(b, "occurred_at", stamp)), SCHEMA

        def huge_strings(rng: random.Random, n: int) -> Made:
            key, b = body(rng, n)
            room = self.limit - 400
            path = rng.choice(["user_id", "item_id", "event_id"])
            value = rng.choice(["u", "用"]) * rng.randint(257, room // 3)
            if path == "user_id":
                key = value.encode()
            return key, _dumps(_set(b, path, value)), SCHEMA

        keys = _key_makers(self.valid_bytes)
        keys[1] = _key_makers(self._valid_composed)[1]
        return [
            *_garbage_makers(self.valid_bytes),
            *keys,
            _too_large(self.valid_bytes, self.limit, self._large),
            wrong_types,
            missing_field,
            unknown_type,
            bad_quantities,
            empty_values,
            control_chars_in_ids,
            bad_timestamps,
            huge_strings,
        ]

    def valid(self, rng: random.Random, n: int, users: list[str], items: list[str]) -> Case:
        user = rng.choice(users)
        kind = rng.choice(["view", "view", "click", "add_to_cart", "purchase"])
        extra: dict[str, Any] = {}
        if kind == "purchase":
            extra["quantity"] = rng.choice([1, 2, 10_000])
            extra["price"] = rng.choice([None, 0, 12.5, 1e9])
        if rng.random() < 0.2:
            extra["unknown"] = {"nested": json.loads(_nested(rng, 20)), "NaN": "NaN"}
        event = self.event(user, rng.choice(items), n, kind, **extra)
        event["event_id"] = f"ok-ue-{n}"
        event["occurred_at"] = f"2026-11-22T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}"
        event["occurred_at"] += rng.choice(["Z", "+05:30", "-08:00", ".123456Z"])
        return Case(EVENTS, user.encode(), _dumps(event), OK, kind, user, event["event_id"])


# ---------------------------------------------------------------------------------------------


def generate(n_bad: int, max_message_bytes: int, seed: int = 20261122) -> list[Case]:
    """``n_bad`` bad messages, half per topic, shuffled among valid events for both topics.

    About one valid catalogue event per 20 bad messages and one valid behaviour event per 10.
    The same arguments give the same cases, byte for byte.
    """
    rng = random.Random(seed)
    catalogue = _CatalogCases(seed, max_message_bytes)
    behaviour = _BehaviourCases(max_message_bytes)
    makers = {ITEMS: catalogue.bad_makers(), EVENTS: behaviour.bad_makers()}
    cases: list[Case] = []
    for n in range(n_bad):
        topic = ITEMS if n % 2 == 0 else EVENTS
        maker = makers[topic][(n // 2) % len(makers[topic])]
        key, value, expect = maker(rng, n)
        if value is not None and len(value) > max_message_bytes:
            expect = TOO_LARGE  # the size is checked before anything else
        assert value is None or len(value) + len(key or b"") <= MAX_WIRE_BYTES, maker.__name__
        cases.append(Case(topic, key, value, expect, maker.__name__))
    valid_items = [catalogue.valid(rng, n) for n in range(max(24, n_bad // 20))]
    users = [f"ok-u-{n}" if n % 5 else f"顾客-{n}" for n in range(max(10, n_bad // 50))]
    item_ids = [c.entity for c in valid_items if c.title is not None]
    item_ids += ["never-in-the-catalogue", "sku-000001"]
    valid_events = [behaviour.valid(rng, n, users, item_ids) for n in range(max(48, n_bad // 10))]
    cases.extend(valid_items)
    cases.extend(valid_events)
    rng.shuffle(cases)
    return cases
