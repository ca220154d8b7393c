"""A shop's own data for ``recstream eval recommendations``: an interactions file and an items file.

Both are CSV (with a header) or JSON lines, chosen by the file name (``.jsonl``/``.ndjson``, else
CSV; ``.gz`` is read compressed).

- interactions: ``user_id, item_id, timestamp`` and optionally ``type`` (``view``, ``click``,
  ``add_to_cart``, ``purchase``; purchase when absent or empty), ``quantity``, ``price``.
  ``timestamp`` is ISO 8601 (UTC when no zone is given) or Unix seconds.
- items: ``item_id, title`` and optionally ``description``, ``brand``, ``category``, ``price``.

A row that cannot be read is skipped and counted, with the first few line numbers and reasons
kept for the report: a shop's export always has a few, and one bad row must not stop the run.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from stream.ranking.profile import Interaction

TYPES = frozenset({"view", "click", "add_to_cart", "purchase"})
_KEPT_PROBLEMS = 20


@dataclass(frozen=True)
class Item:
    item_id: str
    title: str
    """The text the encoder reads (the title, with the other text fields after it)."""
    price: float


@dataclass
class Rejected:
    count: int = 0
    first: list[str] = field(default_factory=list)

    def add(self, line: int, reason: str) -> None:
        self.count += 1
        if len(self.first) < _KEPT_PROBLEMS:
            self.first.append(f"line {line}: {reason}")


@dataclass(frozen=True)
class Dataset:
    name: str
    items: dict[str, Item]
    interactions: dict[str, list[Interaction]]
    """Per user, sorted by ``(at, event_id)``."""
    rejected: dict[str, Rejected]


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of a CSV file with a header, or of a JSON lines file."""
    name = path.name.removesuffix(".gz")
    with _open(path) as f:
        if name.endswith((".jsonl", ".ndjson")):
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    yield n, {"__error__": f"not JSON: {exc}"}
                    continue
                yield n, row if isinstance(row, dict) else {"__error__": "not a JSON object"}
        else:
            for n, row in enumerate(csv.DictReader(f), start=2):  # line 1 is the header
                yield n, row


def _text(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    text = "" if value is None else str(value).strip()
    if not text:
        raise ValueError(f"no {name}")
    return text


def _time(value: object) -> datetime:
    text = "" if value is None else str(value).strip()
    if not text:
        raise ValueError("no timestamp")
    try:
        seconds = float(text)
    except ValueError:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    if not math.isfinite(seconds):
        raise ValueError(f"timestamp {text!r} is not a time")
    return datetime.fromtimestamp(seconds, UTC)


def _number(value: object, name: str) -> float | None:
    if value is None or str(value).strip() == "":
        return None
    number = float(str(value).strip().lstrip("$"))
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} {value!r} is not a non-negative number")
    return number


def load_items(path: Path) -> tuple[dict[str, Item], Rejected]:
    """Items by id: the title with the description, brand and category after it."""
    items: dict[str, Item] = {}
    rejected = Rejected()
    for n, row in _rows(path):
        try:
            if "__error__" in row:
                raise ValueError(row["__error__"])
            item_id, title = _text(row, "item_id"), _text(row, "title")
            extra = [str(row.get(k) or "").strip() for k in ("brand", "category", "description")]
            text = ". ".join([title, *(e for e in extra if e)])
            items[item_id] = Item(item_id, text, _number(row.get("price"), "price") or 0.0)
        except (ValueError, TypeError) as exc:
            rejected.add(n, str(exc))
    return items, rejected


def load_interactions(path: Path) -> tuple[dict[str, list[Interaction]], Rejected]:
    """Each user's interactions in time order (event ids from the line numbers)."""
    out: dict[str, list[Interaction]] = {}
    rejected = Rejected()
    for n, row in _rows(path):
        try:
            if "__error__" in row:
                raise ValueError(row["__error__"])
            kind = str(row.get("type") or "purchase").strip()
            if kind not in TYPES:
                raise ValueError(f"type {kind!r} is not one of {', '.join(sorted(TYPES))}")
            quantity = int(float(row.get("quantity") or 1))
            if quantity < 1:
                raise ValueError("quantity must be at least 1")
            user = _text(row, "user_id")
            out.setdefault(user, []).append(
                Interaction(
                    f"{n:09d}",
                    _text(row, "item_id"),
                    kind,
                    _time(row.get("timestamp")),
                    quantity,
                    _number(row.get("price"), "price"),
                )
            )
        except (ValueError, TypeError, OverflowError) as exc:
            rejected.add(n, str(exc))
    for history in out.values():
        history.sort(key=lambda i: (i.at, i.event_id))
    return out, rejected


def load_dataset(interactions: Path, items: Path) -> Dataset:
    """A shop's files; interactions with items the items file does not name are dropped."""
    catalogue, bad_items = load_items(items)
    histories, bad_rows = load_interactions(interactions)
    known = {
        user: [i for i in history if i.item_id in catalogue] for user, history in histories.items()
    }
    unknown = sum(len(h) for h in histories.values()) - sum(len(h) for h in known.values())
    if unknown:
        bad_rows.count += unknown
        bad_rows.first.append(f"{unknown} interactions name items the items file does not have")
    return Dataset(
        interactions.name,
        catalogue,
        {u: h for u, h in known.items() if h},
        {"items": bad_items, "interactions": bad_rows},
    )
