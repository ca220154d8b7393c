"""The list journal against a real embedded store: what a reload reads back is the last record
written for each key (a removal drops it), whatever the folding did, and the journal stays
within its bound."""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Iterator

import numpy as np
import pytest

from stream.catalog.journal import JournalDamaged, ListJournal, from_line, journal_line
from stream.catalog.lists import NeighbourState
from stream.store import StoredPoint
from stream.store.edge import EdgeStore

LISTS = "item_lists"


@pytest.fixture
def store() -> Iterator[EdgeStore]:
    with tempfile.TemporaryDirectory() as root:
        s = EdgeStore(root)
        s.ensure_collection(LISTS, 1)
        yield s
        s.close()


def state(n: int) -> NeighbourState:
    return NeighbourState((f"n{n}", f"m{n}"), (round(1 / (n + 2), 6), 0.01))


def lines_held(store: EdgeStore) -> int:
    return sum(
        len(p.payload["lists"].split("\n")) for p in store.scroll(LISTS) if p.payload["lists"]
    )


def test_a_reload_reads_the_last_record_of_each_key_through_folds_removals_and_crashes(
    store: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 appends of random keys (some removed, some removed and written again), with a small
    slack so that entries are folded all the time; now and then the deletion of folded
    entries fails (the process dies after writing the entry) and the journal is loaded again,
    as a consumer does after a failure. After each step, a fresh journal reads back exactly the
    last record written per key, and the lines held stay within twice the records plus the
    slack (a failed deletion aside, until the next append)."""
    rng = random.Random(7)
    journal = ListJournal(store, LISTS, slack=10)
    journal.load()
    expected: dict[str, NeighbourState] = {}
    delete = store.delete
    crashes = 0
    for step in range(300):
        keys = rng.sample(range(60), rng.randint(0, 12))
        written = {f"k{k}": state(step * 100 + k) for k in keys}
        gone = [f"k{k}" for k in rng.sample(range(60), rng.randint(0, 3))]
        crash = rng.random() < 0.1
        if crash:
            monkeypatch.setattr(store, "delete", lambda *_: (_ for _ in ()).throw(OSError("x")))
        try:
            journal.append({k: journal_line(k, s) for k, s in written.items()}, gone)
        except OSError:
            crashes += 1
        monkeypatch.setattr(store, "delete", delete)
        for key in gone:
            if key not in written:
                expected.pop(key, None)
        expected.update(written)
        if crash:
            journal = ListJournal(store, LISTS, slack=10)
            assert journal.load() == expected
        elif written or gone:  # (an append of nothing writes nothing, folds nothing)
            assert lines_held(store) <= 2 * len(expected) + 10
        if step % 25 == 0:
            assert ListJournal(store, LISTS).load() == expected
    assert crashes > 10
    assert ListJournal(store, LISTS).load() == expected


def test_a_crash_between_an_entry_and_the_folded_entries_deletion_loses_nothing(
    store: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fold's new entry is written and the process dies before deleting the entries it
    took lines from: both copies are read, the newer wins, and appending goes on after them."""
    journal = ListJournal(store, LISTS, slack=0)
    journal.load()
    journal.append({"a": journal_line("a", state(1)), "b": journal_line("b", state(2))}, ())
    for n in (3, 4):
        journal.append({"a": journal_line("a", state(n))}, ())
    monkeypatch.setattr(store, "delete", lambda *_: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(OSError):
        # 5 lines for 2 records: entry 1 is folded (its a superseded, its b carried)
        journal.append({"a": journal_line("a", state(5))}, ())
    monkeypatch.undo()
    assert len(list(store.scroll(LISTS))) == 4
    again = ListJournal(store, LISTS, slack=0)
    assert again.load() == {"a": state(5), "b": state(2)}
    again.append({"c": journal_line("c", state(6))}, ["a"])
    assert ListJournal(store, LISTS).load() == {"b": state(2), "c": state(6)}


def test_lines_are_the_published_messages_and_a_bad_line_is_no_record() -> None:
    message = (
        b'{"item_id":"x","neighbours":[{"item_id":"y","score":0.5},{"item_id":"z","score":0.25}],'
        b'"model":"m","item_version":3,"generated_at":"2026-12-01T00:00:00Z"}'
    )
    assert from_line(message.decode()) == NeighbourState(("y", "z"), (0.5, 0.25))
    assert from_line(journal_line("x", NeighbourState(("y",), (0.5,))).decode()) == NeighbourState(
        ("y",), (0.5,)
    )
    for bad in (
        "[not json",
        '{"neighbours":[{"item_id":"y","score":true}]}',
        journal_line("x", None).decode(),
    ):
        assert from_line(bad) is None


def test_an_entry_whose_lines_do_not_match_its_keys_is_refused(store: EdgeStore) -> None:
    journal = ListJournal(store, LISTS)
    journal.load()
    journal.append({"a": journal_line("a", state(1))}, ())
    [entry] = list(store.scroll(LISTS))
    damaged = {**entry.payload, "lists": entry.payload["lists"] + "\nextra"}
    store.upsert(LISTS, [StoredPoint(entry.key, damaged, np.ones(1, dtype=np.float32))])
    with pytest.raises(JournalDamaged, match="do not match"):
        ListJournal(store, LISTS).load()


def test_appending_before_loading_is_refused(store: EdgeStore) -> None:
    """Entries are numbered on from what the store holds: an append before load() would
    overwrite entry 1."""
    with pytest.raises(RuntimeError, match="before load"):
        ListJournal(store, LISTS).append({"a": journal_line("a", state(1))}, ())


@pytest.mark.parametrize(
    ("field", "value"), [("lists", 7), ("keys", "[oops"), ("seq", "3"), ("gone", None)]
)
def test_an_entry_with_a_field_of_the_wrong_kind_is_damage(
    store: EdgeStore, field: str, value: object
) -> None:
    journal = ListJournal(store, LISTS)
    journal.load()
    journal.append({"a": journal_line("a", state(1))}, ())
    [entry] = list(store.scroll(LISTS))
    damaged = {**entry.payload, field: value}
    store.upsert(LISTS, [StoredPoint(entry.key, damaged, np.ones(1, dtype=np.float32))])
    with pytest.raises(JournalDamaged):
        ListJournal(store, LISTS).load()


def test_a_line_with_a_raw_newline_does_not_break_the_entry(store: EdgeStore) -> None:
    journal = ListJournal(store, LISTS)
    journal.load()
    pretty = json.dumps({"neighbours": [{"item_id": "y", "score": 0.5}]}, indent=1).encode()
    journal.append({"a": pretty, "b": b"not\njson", "c": journal_line("c", state(2))}, ())
    assert ListJournal(store, LISTS).load() == {
        "a": NeighbourState(("y",), (0.5,)),
        "b": None,
        "c": state(2),
    }
