"""``recstream backfill`` on the embedded broker: what lands on the input topics, the rejects,
and resuming after a limit, a signal or a broker that stops acknowledging."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from faults import FlakyProducer
from kit import settings_env, wait_for

from schemas import parse_behaviour_event, parse_catalog_event
from stream import cli
from stream.backfill.publish import BackfillRequest, DeliveryFailed, backfill
from stream.backfill.rows import ColumnMap
from stream.kafka.inspect import read_topic
from stream.settings import Settings

pytestmark = pytest.mark.integration

ITEMS_CSV = """\
StockCode,Description,UnitPrice,Category,Colour
A1,Red enamel mug,3.5,Home > Kitchen,red
A2,,2.0,Home,blue
A3,"Blue enamel mug,
two-tone",4.25,Home > Kitchen,blue
A4,Tea towel,not a price,Home,white
A5,Green enamel mug,4,Home > Kitchen,
"""
ITEM_MAP = ["--map", "item_id=StockCode", "--map", "title=Description"]
ITEM_MAP += ["--map", "price=UnitPrice", "--map", "categories=Category"]
ITEM_MAP += ["--map", "attributes.colour=Colour"]


def _flags(settings: Settings) -> list[str]:
    return [
        "--kafka-bootstrap",
        settings.kafka_bootstrap,
        "--topic-items",
        settings.topic_items,
        "--topic-user-events",
        settings.topic_user_events,
        "--log-level",
        "warning",
    ]


def _values(settings: Settings, topic: str) -> list[tuple[bytes, dict[str, Any]]]:
    """The topic's (key, JSON value) pairs, in partition and offset order."""
    return [
        (r.key or b"", json.loads(r.value or b"null"))
        for r in sorted(read_topic(settings, topic), key=lambda r: (r.partition, r.offset))
    ]


def _events_file(path: Path, users: int, per_user: int) -> list[str]:
    """A JSON lines behaviour file; returns the event ids in file order."""
    ids = []
    with path.open("w", encoding="utf-8") as f:
        for n in range(users * per_user):
            event_id = f"e-{n}"
            ids.append(event_id)
            event = {
                "type": "view",
                "event_id": event_id,
                "occurred_at": f"2026-11-22T10:{n // 60 % 60:02d}:{n % 60:02d}Z",
                "user_id": f"u-{n % users}",
                "item_id": f"sku-{n % 17}",
            }
            f.write(json.dumps(event) + "\n")
    return ids


def test_csv_with_a_mapping_publishes_exactly_the_good_rows_and_names_the_bad_lines(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Mapped CSV columns become item.created events keyed by item_id that the catalog parser
    accepts, typed (price, category path, attributes), a quoted cell over two lines included;
    a row without a title and one whose price is no number are rejected by their first line,
    printed and written to the rejects file; --strict turns rejects into exit code 1."""
    settings = make_settings()
    path = tmp_path / "items.csv"
    path.write_text(ITEMS_CSV, encoding="utf-8")

    assert cli.main(["backfill", "items", str(path), *ITEM_MAP, *_flags(settings)]) == 0

    out = capsys.readouterr()
    published = _values(settings, settings.topic_items)
    assert sorted(k for k, _ in published) == [b"A1", b"A3", b"A5"]
    for key, value in published:
        event = parse_catalog_event(key, json.dumps(value).encode())
        assert event.type == "item.created"
    by_id = {v["item"]["item_id"]: v["item"] for _, v in published}
    assert by_id["A1"] == {
        "item_id": "A1",
        "title": "Red enamel mug",
        "price": 3.5,
        "categories": ["Home", "Kitchen"],
        "attributes": {"colour": "red"},
    }
    assert by_id["A3"]["title"] == "Blue enamel mug,\ntwo-tone"
    assert "attributes" not in by_id["A5"]  # an empty cell is no value
    assert "line 3: schema: item.created.item.title: Field required" in out.err
    assert "line 6: schema: price 'not a price' is not a number" in out.err
    rejects = [json.loads(t) for t in path.with_name("items.csv.rejects.jsonl").open()]
    assert [(r["line"], r["row"]["StockCode"]) for r in rejects] == [(3, "A2"), (6, "A4")]
    assert "published 3 rows, rejected 2" in out.out

    again = [*ITEM_MAP, *_flags(settings), "--restart", "--strict"]
    assert cli.main(["backfill", "items", str(path), *again]) == 1


def test_a_limited_run_resumes_after_its_last_row_without_duplicates(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """--limit stops a run after N published rows with the resume point after them; runs
    after it continue from there, so the topic holds every row exactly once, keyed by user,
    and a run after the end publishes nothing. --restart publishes everything again."""
    settings = make_settings()
    path = tmp_path / "events.jsonl"
    ids = _events_file(path, users=7, per_user=10)
    argv = ["backfill", "events", str(path), *_flags(settings)]

    assert cli.main([*argv, "--limit", "25"]) == 0
    assert len(read_topic(settings, settings.topic_user_events)) == 25
    assert cli.main([*argv, "--limit", "30"]) == 0
    assert cli.main(argv) == 0
    assert cli.main(argv) == 0  # after the end: nothing more

    published = _values(settings, settings.topic_user_events)
    assert sorted(v["event_id"] for _, v in published) == sorted(ids)
    for key, value in published:
        assert parse_behaviour_event(key, json.dumps(value).encode()).user_id == key.decode()
    # per user, the file's order is kept (one key, one partition)
    for user in {v["user_id"] for _, v in published}:
        mine = [v["event_id"] for _, v in published if v["user_id"] == user]
        assert mine == [i for i in ids if int(i[2:]) % 7 == int(user[2:])]

    assert cli.main([*argv, "--restart"]) == 0
    assert len(read_topic(settings, settings.topic_user_events)) == 2 * len(ids)


def test_json_lines_rows_are_validated_strictly_and_bad_lines_rejected(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """JSON lines keep their JSON types (a price given as text is invalid, as on the topic),
    a line that is no JSON is rejected by number, blank lines are skipped, keys map too."""
    settings = make_settings()
    path = tmp_path / "history.ndjson"
    rows: list[dict[str, Any]] = [
        {
            "kind": "purchase",
            "id": "e-1",
            "when": "2026-11-22T10:00:00Z",
            "user": "u-1",
            "sku": "sku-1",
            "price": 12.5,
        },
        {
            "kind": "view",
            "id": "e-2",
            "when": "2026-11-22T10:01:00Z",
            "user": "u-2",
            "sku": "sku-2",
            "price": "12.5",
        },
    ]
    lines = [json.dumps(rows[0]), "", "{not json", json.dumps(rows[1])]
    lines.append(json.dumps({**rows[0], "id": "e-3", "kind": "click", "user": "u-3"}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    mapping = ["--map", "type=kind", "--map", "event_id=id", "--map", "timestamp=when"]
    mapping += ["--map", "user_id=user", "--map", "item_id=sku"]

    assert cli.main(["backfill", "events", str(path), *mapping, *_flags(settings)]) == 0

    err = capsys.readouterr().err
    published = _values(settings, settings.topic_user_events)
    assert sorted((k, v["event_id"]) for k, v in published) == [(b"u-1", "e-1"), (b"u-3", "e-3")]
    assert "line 3: not JSON" in err
    assert "line 4: schema: price: Input should be a valid number" in err


def test_rows_the_broker_did_not_acknowledge_are_published_by_the_next_run(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """When deliveries fail (real librdkafka timeouts against a closed port), the run stops
    with DeliveryFailed and the resume point stays before every unacknowledged row: the next
    run publishes them, so every row ends up on the topic."""
    settings = make_settings()
    path = tmp_path / "events.jsonl"
    ids = _events_file(path, users=5, per_user=40)
    sent = 0

    class BreaksAfter(FlakyProducer):  # type: ignore[misc]
        def produce(self, *args: Any, **kwargs: Any) -> None:
            nonlocal sent
            sent += 1
            if sent > 120:
                FlakyProducer.failing.set()
            super().produce(*args, **kwargs)

    # FlakyProducer's failing half gives up after 0.5 s whatever the request's timeout
    request = BackfillRequest(
        "events", path, ColumnMap("events", {}, {}), checkpoint_rows=50, checkpoint_s=3600
    )
    try:
        with pytest.raises(DeliveryFailed, match="resume point stays at line 100"):
            backfill(settings, request, producer_factory=BreaksAfter)
    finally:
        FlakyProducer.failing.clear()
    saved = json.loads(path.with_name("events.jsonl.backfill-offset").read_text())
    assert saved["line"] == 100
    on_topic = {v["event_id"] for _, v in _values(settings, settings.topic_user_events)}
    assert len(on_topic) == 120  # 100 confirmed, 20 delivered after the last point

    report = backfill(settings, request)
    assert report.resumed_after == 100 and report.published == 100 and report.complete
    published = Counter(v["event_id"] for _, v in _values(settings, settings.topic_user_events))
    assert set(published) == set(ids)
    assert max(published.values()) == 2  # at least once: the 20 after the point, again


def test_sigterm_stops_at_a_confirmed_row_and_the_next_run_completes_without_duplicates(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A real `recstream backfill` process paced at 200 rows/s that gets SIGTERM mid-file
    confirms what it sent, saves the point and exits 1; the rerun publishes the rest: every
    row exactly once."""
    settings = make_settings()
    path = tmp_path / "events.jsonl"
    ids = _events_file(path, users=9, per_user=100)
    command = [sys.executable, "-m", "stream.cli", "backfill", "events", str(path)]
    proc = subprocess.Popen(
        [*command, "--rate", "200"],
        env=settings_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        offset = path.with_name("events.jsonl.backfill-offset")
        wait_for(offset.exists, timeout_s=60, what="a first resume point")
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    _, err = proc.communicate()
    assert rc == 1, err[-2000:]
    assert "run again to resume" in err
    first = len(read_topic(settings, settings.topic_user_events))
    assert 0 < first < len(ids)
    assert json.loads(offset.read_text())["line"] == first

    rerun = subprocess.run(command, env=settings_env(settings), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    published = [v["event_id"] for _, v in _values(settings, settings.topic_user_events)]
    assert sorted(published) == sorted(ids)


def test_a_resume_file_of_another_topic_is_refused(
    make_settings: Callable[..., Settings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A resume point saved for one topic does not silently skip rows of a backfill to another:
    exit 2 naming --restart, nothing published."""
    first, second = make_settings(), make_settings()
    path = tmp_path / "events.jsonl"
    _events_file(path, users=2, per_user=3)
    assert cli.main(["backfill", "events", str(path), *_flags(first)]) == 0
    assert cli.main(["backfill", "events", str(path), *_flags(second)]) == 2
    assert "--restart" in capsys.readouterr().err
    assert read_topic(second, second.topic_user_events) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--map", "item_id=Code"], "column 'Code' (for item_id) not in the header"),
        (["--map", "sku=StockCode"], "'sku' is not a field of items"),
        (["--map", "item_id=StockCode"], "no column for title"),
        (["--format", "jsonl", "--rate", "0"], "--rate must be above 0"),
    ],
)
def test_a_mapping_that_cannot_work_is_refused_before_any_row(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    """Mapping mistakes are exit 2 with the column or field named, and nothing is published."""
    settings = make_settings()
    path = tmp_path / "items.csv"
    path.write_text(ITEMS_CSV, encoding="utf-8")
    assert cli.main(["backfill", "items", str(path), *argv, *_flags(settings)]) == 2
    assert message in capsys.readouterr().err
    assert read_topic(settings, settings.topic_items) == []


def test_the_progress_bar_counts_the_file_lines(
    make_settings: Callable[..., Settings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a progress bar (on a terminal, or asked for) stderr shows the lines done of the
    file's lines, ending at all of them."""
    settings = make_settings()
    path = tmp_path / "events.jsonl"
    _events_file(path, users=3, per_user=40)
    request = BackfillRequest("events", path, ColumnMap("events", {}, {}), progress=True)
    assert backfill(settings, request).published == 120
    assert "120/120" in capsys.readouterr().err


def test_a_file_changed_before_the_resume_point_is_refused_and_one_appended_to_resumes(
    make_settings: Callable[..., Settings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The point is a line number: rows appended later are published by the next run, but a
    file whose earlier lines changed is refused (exit 2, --restart named) instead of skipping
    rows the first run never saw."""
    settings = make_settings()
    path = tmp_path / "events.jsonl"
    ids = _events_file(path, users=2, per_user=10)
    argv = ["backfill", "events", str(path), *_flags(settings)]
    assert cli.main(argv) == 0
    text = path.read_text(encoding="utf-8")
    extra = json.loads(text.splitlines()[0]) | {"event_id": "e-late"}
    path.write_text(text + json.dumps(extra) + "\n", encoding="utf-8")
    assert cli.main(argv) == 0
    published = [v["event_id"] for _, v in _values(settings, settings.topic_user_events)]
    assert sorted(published) == sorted([*ids, "e-late"])

    path.write_text(text.replace('"e-0"', '"e-new"'), encoding="utf-8")
    capsys.readouterr()
    assert cli.main(argv) == 2
    assert "changed before the resume point" in capsys.readouterr().err
    assert len(read_topic(settings, settings.topic_user_events)) == len(ids) + 1
