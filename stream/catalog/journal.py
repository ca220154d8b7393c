"""The memory finder's durable record of published lists: a journal, one store point per batch.

An entry holds a batch's published lists as one string, the messages as published on
``items.neighbours``, one per line (compact JSON has no raw newline), with their keys as a
JSON array beside them. A point of its own per list costs a binding object per list, which made
recording a large batch's thousands of lists its costliest store write; one entry a batch costs
a small fraction of that (bench/README.md).

Entries are points of the ``item_lists`` collection keyed `` entry <seq>``: an item id never
starts with a space (ids are stripped), so no entry can take an item's key. Loading replays them
in ``seq`` order: an entry's ``gone`` keys lose their record, then its lines set theirs.

The journal stays within twice the records still current (plus :data:`SLACK` lines): past
that, the next entry takes over the current lines of the entries with the fewest, copied as they
are (and their gone keys, where an older entry may still hold a line for them), and those
entries are deleted once it is written. A crash in between leaves lines twice, and the replay
order makes the newer copy win.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import structlog

from stream.catalog.lists import NeighbourState
from stream.store import StoredPoint, VectorStore

log = structlog.get_logger(__name__)

SLACK = 20_000
"""Lines the journal may hold beyond twice the current records before old entries are folded."""
_PREFIX = " entry "
_PLACEHOLDER = np.ones(1, dtype=np.float32)


class JournalDamaged(Exception):
    """An entry cannot be read: which records it held is unknown, so none can be trusted."""


class ListJournal:
    """Appends published lists to ``collection`` and reads them back (see the module).

    :meth:`load` comes first: the numbering of entries continues from what the store holds."""

    def __init__(self, store: VectorStore, collection: str, slack: int = SLACK) -> None:
        self.store = store
        self.collection = collection
        self.slack = slack
        self._latest: dict[str, int] = {}  # key -> seq of the entry with its current line
        self._sizes: dict[int, int] = {}  # seq -> lines in that entry, current or not
        self._live: dict[int, int] = {}  # seq -> lines in that entry that are current
        self._next = 1
        self._loaded = False

    def load(self) -> dict[str, NeighbourState | None]:
        """Every key's current record (None: a line that is not a well-formed list, which is
        no record). Raises :class:`JournalDamaged` when an entry cannot be read."""
        self._reset()
        entries: list[tuple[int, dict[str, Any]]] = []
        for point in self.store.scroll(self.collection):
            seq = point.payload.get("seq")
            if not point.key.startswith(_PREFIX) or not isinstance(seq, int):
                raise JournalDamaged(f"point {point.key!r} is not a numbered journal entry")
            entries.append((seq, point.payload))
        records: dict[str, NeighbourState | None] = {}
        for seq, payload in sorted(entries, key=_first):
            keys, lines, gone = _read(seq, payload)
            for key in gone:
                records.pop(key, None)
                self._latest.pop(key, None)
            for key, text in zip(keys, lines, strict=True):
                records[key] = from_line(text)
                self._latest[key] = seq
            self._sizes[seq] = len(keys)
            self._next = max(self._next, seq + 1)
        self._live = {seq: 0 for seq in self._sizes}
        for seq in self._latest.values():
            self._live[seq] += 1
        self._loaded = True
        return records

    def append(self, lines: Mapping[str, bytes], gone: Iterable[str]) -> None:
        """Write one entry: these keys' records are now ``lines`` (one published message each),
        and ``gone`` keys have none. When the journal holds more than twice the current
        records (plus the slack), the entries with the fewest current lines are folded in."""
        if not self._loaded:
            raise RuntimeError("ListJournal.append before load(): entries would be overwritten")
        gone = list(dict.fromkeys(k for k in gone if k not in lines))
        if not lines and not gone:
            return
        seq = self._next
        keys = list(lines)
        texts = [_one_line(key, value.decode()) for key, value in lines.items()]
        live = dict(self._live)  # as they will be once this entry is written
        for key in (*keys, *gone):
            if key in self._latest:
                live[self._latest[key]] -= 1
        current = sum(live.values()) + len(keys)
        total = sum(self._sizes.values()) + len(keys)
        folded: list[int] = []
        superseded = set(keys) | set(gone)
        oldest = min(self._sizes, default=seq)
        for old in sorted(self._sizes, key=lambda s: (live[s] / max(self._sizes[s], 1), s)):
            if total <= 2 * current + self.slack:
                break
            carried, still_gone = self._still_current(old, superseded)
            keys.extend(carried)
            texts.extend(carried.values())
            if old != oldest:  # an older entry may hold lines for them
                gone.extend(still_gone)
                superseded.update(still_gone)
            total += len(carried) - self._sizes[old]
            folded.append(old)
        payload = {
            "seq": seq,
            "keys": json.dumps(keys, ensure_ascii=False),
            "lists": "\n".join(texts),
            "gone": json.dumps(gone, ensure_ascii=False),
        }
        self.store.upsert(self.collection, [StoredPoint(_key(seq), payload, _PLACEHOLDER)])
        self._next = seq + 1
        for key in (*gone, *keys):
            before = self._latest.pop(key, None)
            if before is not None:
                self._live[before] -= 1
        for key in keys:
            self._latest[key] = seq
        self._sizes[seq] = self._live[seq] = len(keys)
        for old in folded:
            del self._sizes[old], self._live[old]
        if folded:
            self.store.delete(self.collection, [_key(s) for s in sorted(folded)])

    def clear(self) -> None:
        """Delete every entry, oldest first (an engine that deletes point by point, stopped half
        way, leaves only newer entries: records missing, never older ones back), then any point
        that is no numbered entry."""
        entries, unreadable = [], []
        for point in self.store.scroll(self.collection):
            seq = point.payload.get("seq")
            if point.key.startswith(_PREFIX) and isinstance(seq, int):
                entries.append((seq, point.key))
            else:
                unreadable.append(point.key)
        ordered = [*(key for _, key in sorted(entries)), *unreadable]
        self.store.delete(self.collection, ordered)
        self._reset()
        self._loaded = True

    def _reset(self) -> None:
        self._latest, self._sizes, self._live, self._next = {}, {}, {}, 1
        self._loaded = False

    def _still_current(self, seq: int, superseded: set[str]) -> tuple[dict[str, str], list[str]]:
        """Lines of entry ``seq`` that still hold their key's record (and are not being
        replaced by the entry being written), and its gone keys that have no record since."""
        point = self.store.retrieve(self.collection, [_key(seq)]).get(_key(seq))
        if point is None:
            raise JournalDamaged(f"entry {seq} is gone from {self.collection!r}")
        keys, lines, gone = _read(seq, point.payload)
        latest = self._latest
        current = {
            key: text
            for key, text in zip(keys, lines, strict=True)
            if latest.get(key) == seq and key not in superseded
        }
        return current, [k for k in gone if k not in latest and k not in superseded]


def journal_line(key: str, state: NeighbourState | None) -> bytes:
    """A journal line for a record not taken from a published message (a well-formed list
    has the message's ``item_id`` and ``neighbours``; None gives a line read as no record)."""
    pairs = None if state is None else list(zip(state.ids, state.scores, strict=True))
    neighbours = None if pairs is None else [{"item_id": i, "score": s} for i, s in pairs]
    return json.dumps({"item_id": key, "neighbours": neighbours}, ensure_ascii=False).encode()


def from_line(text: str) -> NeighbourState | None:
    """The list a journal line records, or None when it is not a well-formed list."""
    try:
        neighbours = json.loads(text)["neighbours"]
        ids = [n["item_id"] for n in neighbours]
        scores = [n["score"] for n in neighbours]
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    return NeighbourState.from_payload({"nb_ids": ids, "nb_scores": scores})


def _read(seq: int, payload: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """An entry's keys, lines and gone keys."""
    try:
        keys = json.loads(payload["keys"])
        gone = json.loads(payload["gone"])
        text = payload["lists"]
        if not isinstance(text, str):
            raise TypeError(f"lists is {type(text).__name__}, not text")
        lines = text.split("\n") if text else []
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise JournalDamaged(f"entry {seq} cannot be read: {exc}") from exc
    if not (isinstance(keys, list) and isinstance(gone, list)) or len(keys) != len(lines):
        raise JournalDamaged(f"entry {seq}: keys and lines do not match")
    return [str(k) for k in keys], lines, [str(k) for k in gone]


def _one_line(key: str, text: str) -> str:
    """``text`` as one line: compact JSON has no raw newline, but a line must not break the
    entry whatever it was given (written again compactly, or as no record if not JSON)."""
    if "\n" not in text:
        return text
    try:
        return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    except (ValueError, RecursionError):
        return journal_line(key, None).decode()


def _key(seq: int) -> str:
    return f"{_PREFIX}{seq}"


def _first(entry: tuple[int, dict[str, Any]]) -> int:
    return entry[0]
