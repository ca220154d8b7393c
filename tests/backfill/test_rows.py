"""Rows to messages without a broker: conversions, generated ids, mapping checks, the pace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream.backfill.rows import (
    BadInput,
    ColumnMap,
    Message,
    Reject,
    Row,
    check_header,
    file_format,
    parse_pairs,
    read_rows,
    to_message,
)
from stream.backfill.state import Pace

STAMP = "2026-11-22T10:00:00+00:00"
EVENTS = ColumnMap("events", {"user_id": "Customer"}, {"type": "purchase"}, "%m/%d/%Y %H:%M")


def _message(row: dict[str, str], columns: ColumnMap = EVENTS, line: int = 2) -> Message:
    result = to_message(Row(line, row), columns, "csv", "f.csv", STAMP, 262_144)
    assert isinstance(result, Message), result
    return result


def test_csv_cells_become_typed_fields_and_a_naive_time_is_utc() -> None:
    """Quantity and price text become numbers, a time in the given format is taken as UTC,
    --set fills the type, and the key is the user id."""
    row = {
        "Customer": "17850",
        "item_id": "85123A",
        "occurred_at": "12/1/2010 8:26",
        "quantity": "6",
        "price": "2.55",
    }
    message = _message(row)
    body = json.loads(message.value)
    assert message.key == b"17850"
    assert body["occurred_at"] == "2010-12-01T08:26:00+00:00"
    assert (body["type"], body["quantity"], body["price"]) == ("purchase", 6, 2.55)


def test_a_generated_event_id_is_the_same_for_the_same_row_and_differs_by_line() -> None:
    """A rerun republishes a row with the id it had (the consumer counts it once); two equal
    rows on different lines are two events."""
    row = {"Customer": "1", "item_id": "a", "timestamp": "1700000000"}
    unix = ColumnMap("events", {"user_id": "Customer"}, {"type": "view"})
    first, again, other = _message(row, unix), _message(row, unix), _message(row, unix, 3)
    ids = [json.loads(m.value)["event_id"] for m in (first, again, other)]
    assert ids[0] == ids[1] != ids[2]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"quantity": "1.5"}, "quantity '1.5' is not a whole number"),
        ({"quantity": "0"}, "quantity: Input should be greater than or equal to 1"),
        ({"price": "nan"}, "price 'nan' is not a finite number"),
        ({"occurred_at": "yesterday"}, "occurred_at 'yesterday' is not a time"),
        ({"Customer": " "}, "user_id: Field required"),
    ],
)
def test_a_bad_cell_is_a_reject_with_its_reason(row: dict[str, str], reason: str) -> None:
    """Conversion failures and schema failures both come back as rejects of the row's line."""
    base = {"Customer": "1", "item_id": "a", "occurred_at": "1/2/2011 10:00"}
    result = to_message(Row(9, {**base, **row}), EVENTS, "csv", "f.csv", STAMP, 262_144)
    assert isinstance(result, Reject) and result.line == 9
    assert reason in result.reason


def test_a_deletion_row_is_an_item_deleted_event() -> None:
    """type item.deleted makes a deletion keyed by the item, its title not needed."""
    columns = ColumnMap("items", {}, {"type": "item.deleted"})
    body = json.loads(_message({"item_id": "sku-1", "version": "3"}, columns).value)
    assert (body["type"], body["item_id"], body["version"]) == ("item.deleted", "sku-1", 3)


def test_a_message_over_the_size_limit_is_rejected_as_too_large() -> None:
    """The consumer would dead-letter it as too_large: the backfill rejects it instead."""
    columns = ColumnMap("items", {}, {})
    row = Row(2, {"item_id": "a", "title": "x", "description": "y" * 5_000})
    result = to_message(row, columns, "csv", "f.csv", STAMP, 1_000)
    assert isinstance(result, Reject) and result.reason.startswith("too_large")


def test_mapping_mistakes_are_refused_with_the_field_named() -> None:
    """Unknown fields, pairs without '=' and missing required columns stop the command."""
    with pytest.raises(BadInput, match="'colour' is not a field of items"):
        parse_pairs(["colour=Colour"], "items", "--map")
    with pytest.raises(BadInput, match="is not FIELD=VALUE"):
        parse_pairs(["item_id"], "items", "--map")
    assert parse_pairs(["timestamp=When"], "events", "--map") == {"occurred_at": "When"}
    with pytest.raises(BadInput, match="no column for type, occurred_at"):
        check_header(ColumnMap("events", {}, {}), ["user_id", "item_id"])
    check_header(ColumnMap("events", {}, {"type": "view"}), ["user_id", "item_id", "timestamp"])


def test_the_format_comes_from_the_name_or_the_option(tmp_path: Path) -> None:
    """.csv/.tsv/.jsonl/.ndjson/.json, compressed or not; anything else needs --format."""
    assert file_format(Path("a.csv.gz")) == "csv"
    assert file_format(Path("a.ndjson")) == "jsonl"
    assert file_format(Path("a.txt"), "csv") == "csv"
    with pytest.raises(BadInput, match="--format"):
        file_format(Path("a.txt"))


def test_csv_rows_carry_the_line_they_start_on(tmp_path: Path) -> None:
    """Line numbers count the header and the lines of quoted cells; blank lines are skipped;
    a row with more cells than the header is an error of its line."""
    path = tmp_path / "a.csv"
    path.write_text('id,title\n1,"two\nlines"\n\n2,b\n3,c,extra\n', encoding="utf-8")
    rows = list(read_rows(path, "csv"))
    assert [(r.line, r.error is None) for r in rows] == [(2, True), (5, True), (6, False)]


def test_the_pace_spaces_messages_and_makes_up_at_most_a_burst() -> None:
    """At 10/s messages leave 0.1 s apart; after a 2 s pause only 0.1 s worth (one message)
    goes at once, then the spacing resumes."""
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(round(s, 6))
        now[0] += s

    pace = Pace(10, burst_s=0.1, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        pace.wait()
    assert slept == [0.1, 0.1]
    now[0] += 2.0
    pace.wait()
    pace.wait()
    pace.wait()
    assert slept == [0.1, 0.1, 0.1]
