"""A shop's file, row by row, as the messages the consumers read, or why a row cannot be one.

Pure: no Kafka. CSV cells are text, converted to the message's types here (a price ``"12.5"``
becomes 12.5, a naive time is taken as UTC); JSON lines values keep their JSON types and meet the
schemas' strict checks as they are. Every message is validated by the parser the consumer runs
(``parse_catalog_event``, ``parse_behaviour_event``) on the exact bytes that will be published,
so a row that passes here is one the consumer accepts.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from schemas import InvalidEvent, event_item_id, parse_behaviour_event, parse_catalog_event
from schemas.errors import TOO_LARGE, shorten

Kind = Literal["items", "events"]
Format = Literal["csv", "jsonl"]

ITEM_FIELDS = ("item_id", "title", "description", "brand", "categories", "price", "currency")
ITEM_TARGETS = (*ITEM_FIELDS, "in_stock", "type", "event_id", "occurred_at", "version")
EVENT_TARGETS = ("user_id", "item_id", "type", "occurred_at", "event_id", "quantity", "price")
ATTRIBUTE_PREFIX = "attributes."
ALIASES = {"timestamp": "occurred_at"}
"""Target names accepted for another (``--map timestamp=InvoiceDate``)."""
REQUIRED: dict[Kind, tuple[str, ...]] = {
    "items": ("item_id", "title"),
    "events": ("user_id", "item_id", "type", "occurred_at"),
}
ITEM_DELETED = "item.deleted"
CATEGORY_SEPARATOR = ">"
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})
_MAX_REASON_CHARS = 500


class BadInput(ValueError):
    """The file, its format or the mapping cannot work at all (not one bad row)."""


@dataclass(frozen=True)
class Row:
    """One row of the file: its first line's number and its fields, or why it is unreadable."""

    line: int
    fields: Mapping[str, Any]
    error: str | None = None


@dataclass(frozen=True)
class Message:
    """A validated message, ready to publish."""

    line: int
    key: bytes
    value: bytes


@dataclass(frozen=True)
class Reject:
    """A row that is not a valid message, and why."""

    line: int
    reason: str
    row: Mapping[str, Any]


def file_format(path: Path, given: str | None = None) -> Format:
    """``csv`` or ``jsonl``: ``given``, else from the name (``.csv``, ``.jsonl``, ``.ndjson``,
    ``.json``; ``.gz`` after any of them)."""
    if given is not None:
        if given not in ("csv", "jsonl"):
            raise BadInput(f"format {given!r} is not csv or jsonl")
        return "csv" if given == "csv" else "jsonl"
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    raise BadInput(f"cannot tell the format of {path.name} from its name: pass --format csv|jsonl")


def _open(path: Path) -> IO[str]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def count_lines(path: Path) -> int:
    """Lines in the file (for the progress bar's total)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    lines = 0
    last = b"\n"
    with opener(path, "rb") as f:
        while chunk := f.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def csv_header(path: Path) -> list[str]:
    """The column names of a CSV file (its first row)."""
    with _open(path) as f:
        return next(csv.reader(f, dialect=_dialect(path)), [])


def _dialect(path: Path) -> type[csv.Dialect]:
    return csv.excel_tab if path.name.lower().removesuffix(".gz").endswith(".tsv") else csv.excel


def read_rows(path: Path, fmt: Format) -> Iterator[Row]:
    """Every row of the file with the number of the line it starts on (CSV: after the header;
    a quoted cell may span lines). Blank lines are skipped; unreadable ones come as errors."""
    with _open(path) as f:
        if fmt == "jsonl":
            for n, line in enumerate(f, start=1):
                if line.strip():
                    yield _json_row(n, line)
            return
        reader = csv.reader(f, dialect=_dialect(path))
        header = next(reader, None)
        if header is None:
            return
        names = [h.strip() for h in header]
        start = reader.line_num + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield Row(start, {}, f"unreadable CSV: {exc}")
                start = reader.line_num + 1
                continue
            if cells:
                if len(cells) > len(names):
                    error = f"{len(cells)} cells for {len(names)} columns"
                    yield Row(start, dict(zip(names, cells, strict=False)), error)
                else:
                    yield Row(start, dict(zip(names, cells, strict=False)))
            start = reader.line_num + 1


def _json_row(n: int, line: str) -> Row:
    try:
        body = json.loads(line)
    except (ValueError, RecursionError) as exc:
        return Row(n, {"text": shorten(line.strip(), 200)}, f"not JSON: {shorten(str(exc), 120)}")
    if not isinstance(body, dict):
        return Row(n, {"text": shorten(line.strip(), 200)}, "not a JSON object")
    return Row(n, body)


@dataclass(frozen=True)
class ColumnMap:
    """Which column feeds which message field, and the values every row gets."""

    kind: Kind
    columns: Mapping[str, str]
    """target -> source column (targets not named here read the column of the same name)."""
    constants: Mapping[str, str]
    """target -> value for every row (``--set type=purchase``)."""
    time_format: str | None = None
    """``strptime`` format of CSV times that are not ISO 8601 or Unix seconds."""


def parse_pairs(pairs: list[str], kind: Kind, what: str) -> dict[str, str]:
    """``["target=value", ...]`` as a dict; targets checked against the kind's fields."""
    out: dict[str, str] = {}
    targets = ITEM_TARGETS if kind == "items" else EVENT_TARGETS
    for pair in pairs:
        target, sep, value = pair.partition("=")
        target = ALIASES.get(target.strip(), target.strip())
        if not sep or not target or not value:
            raise BadInput(f"{what} {pair!r} is not FIELD=VALUE")
        attribute = (
            kind == "items" and target.startswith(ATTRIBUTE_PREFIX) and target != "attributes."
        )
        if target not in targets and not attribute:
            extra = f", {ATTRIBUTE_PREFIX}<key>" if kind == "items" else ""
            raise BadInput(
                f"{what} {pair!r}: {target!r} is not a field of {kind} "
                f"(one of {', '.join(targets)}{extra}; timestamp = occurred_at)"
            )
        out[target] = value
    return out


def check_header(mapping: ColumnMap, header: list[str]) -> None:
    """Every mapped column exists and every required field has a source, before any row."""
    missing = [f"{c!r} (for {t})" for t, c in mapping.columns.items() if c not in header]
    if missing:
        raise BadInput(f"column {', '.join(missing)} not in the header: {', '.join(header[:30])}")
    fed = {*mapping.columns, *mapping.constants, *(ALIASES.get(h, h) for h in header)}
    required = REQUIRED[mapping.kind]
    if mapping.constants.get("type") == ITEM_DELETED:
        required = ("item_id",)
    unfed = [t for t in required if t not in fed]
    if unfed:
        raise BadInput(
            f"no column for {', '.join(unfed)}: map one (--map {unfed[0]}=COLUMN)"
            + (" or give a value (--set type=purchase)" if "type" in unfed else "")
        )


class RowError(ValueError):
    """One row's value cannot be converted (a price that is no number)."""


def _mapped(row: Mapping[str, Any], mapping: ColumnMap) -> dict[str, Any]:
    """The row renamed to message fields: mapped columns, same-named ones, constants."""
    out: dict[str, Any] = {}
    renamed = set(mapping.columns.values())
    for name, value in row.items():
        if name in renamed:
            continue
        out[ALIASES.get(name, name)] = value
    for target, column in mapping.columns.items():
        if column in row:
            out[target] = row[column]
    for target, value in mapping.constants.items():
        out.setdefault(target, value)
    return out


def _number(value: str, name: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        raise RowError(f"{name} {shorten(value, 40)!r} is not a number") from None
    if not math.isfinite(number):
        raise RowError(f"{name} {shorten(value, 40)!r} is not a finite number")
    return number


def _integer(value: str, name: str) -> int:
    number = _number(value, name)
    if number != int(number):
        raise RowError(f"{name} {shorten(value, 40)!r} is not a whole number")
    return int(number)


def _boolean(value: str, name: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise RowError(f"{name} {shorten(value, 40)!r} is not true or false")


def _time(value: str, time_format: str | None) -> str:
    text = value.strip()
    try:
        if time_format:
            at = datetime.strptime(text, time_format)
        else:
            try:
                return datetime.fromtimestamp(float(text), UTC).isoformat()
            except ValueError:
                at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        hint = f" ({time_format})" if time_format else " (ISO 8601 or Unix seconds; --time-format)"
        raise RowError(f"occurred_at {shorten(text, 40)!r} is not a time{hint}") from None
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).isoformat()


_CONVERT_EVENT = {"quantity": _integer, "price": _number}
_CONVERT_ITEM = {"price": _number, "in_stock": _boolean, "version": _integer}


def _converted(fields: dict[str, Any], mapping: ColumnMap) -> dict[str, Any]:
    """CSV text cells as the message's types; empty cells as absent."""
    out: dict[str, Any] = {}
    convert = _CONVERT_ITEM if mapping.kind == "items" else _CONVERT_EVENT
    for name, value in fields.items():
        if not isinstance(value, str):
            out[name] = value
        elif not value.strip():
            continue
        elif name == "occurred_at":
            out[name] = _time(value, mapping.time_format)
        elif name == "categories":
            out[name] = [c.strip() for c in value.split(CATEGORY_SEPARATOR) if c.strip()]
        elif name in convert:
            out[name] = convert[name](value, name)
        else:
            out[name] = value
    return out


def event_id_for(kind: Kind, source: str, line: int, row: Mapping[str, Any]) -> str:
    """A stable id for a row without one: the same row of the same file always gets the same id,
    so a row published twice (a rerun after a failure) counts once."""
    digest = hashlib.sha256(
        json.dumps([kind, source, line, row], sort_keys=True, default=str).encode()
    ).hexdigest()
    return f"backfill-{digest[:24]}"


def _item_body(fields: dict[str, Any], source: str, line: int, stamp: str) -> dict[str, Any]:
    """A catalogue event: a full event as it is, or a flat item wrapped in one."""
    if "item" in fields or fields.get("type") == ITEM_DELETED:
        body = dict(fields)
        keys = ("type", "event_id", "occurred_at", "version", "item_id")
        if fields.get("type") == ITEM_DELETED:
            body = {k: fields[k] for k in keys if k in fields}
    else:
        item = {k: v for k, v in fields.items() if k in (*ITEM_FIELDS, "in_stock", "attributes")}
        attributes = {
            k.removeprefix(ATTRIBUTE_PREFIX): v
            for k, v in fields.items()
            if k.startswith(ATTRIBUTE_PREFIX)
        }
        if attributes:
            item["attributes"] = {**item.get("attributes", {}), **attributes}
        body = {"type": fields.get("type", "item.created"), "item": item}
        for name in ("event_id", "occurred_at", "version"):
            if name in fields:
                body[name] = fields[name]
    body.setdefault("event_id", event_id_for("items", source, line, fields))
    body.setdefault("occurred_at", stamp)
    return body


def to_message(
    row: Row, mapping: ColumnMap, fmt: Format, source: str, stamp: str, max_bytes: int
) -> Message | Reject:
    """The row as a validated message keyed as its consumer expects, or why it is rejected.

    ``source`` names the file in generated event ids; ``stamp`` is the ``occurred_at`` of items
    without one (the time the backfill began).
    """
    if row.error is not None:
        return Reject(row.line, row.error, row.fields)
    try:
        fields = _mapped(row.fields, mapping)
        if fmt == "csv":
            fields = _converted(fields, mapping)
        if mapping.kind == "items":
            body = _item_body(fields, source, row.line, stamp)
        else:
            body = {k: v for k, v in fields.items() if k in EVENT_TARGETS}
            body.setdefault("event_id", event_id_for("events", source, row.line, fields))
        value = json.dumps(body, ensure_ascii=False, allow_nan=False).encode()
    except RowError as exc:
        return Reject(row.line, f"schema: {exc}", row.fields)
    except (ValueError, TypeError) as exc:  # NaN in a JSON row is refused by allow_nan
        return Reject(row.line, f"invalid_json: {shorten(str(exc), 120)}", row.fields)
    if len(value) > max_bytes:
        reason = f"{TOO_LARGE}: {len(value):,} bytes, over RECSTREAM_MAX_MESSAGE_BYTES"
        return Reject(row.line, reason, row.fields)
    try:
        if mapping.kind == "items":
            key = event_item_id(parse_catalog_event(None, value))
        else:
            key = parse_behaviour_event(None, value).user_id
    except InvalidEvent as exc:
        return Reject(row.line, shorten(str(exc), _MAX_REASON_CHARS), row.fields)
    return Message(row.line, key.encode(), value)
