"""The ``recstream backfill`` command line: its options, and the summary it prints."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stream.settings import Settings

HELP = "publish a shop's catalogue or behaviour history (CSV or JSON lines) to the input topics"
_EPILOG = """\
items: item_id, title[, description, brand, categories ("A > B > C"), price, currency, in_stock,
attributes.<key>], optional type (item.created by default, item.updated, item.deleted), event_id,
occurred_at (the first run's start by default), version. JSON lines may also hold whole
catalog.items events. events: user_id, item_id, type (view, click, add_to_cart, purchase),
timestamp (ISO 8601, naive = UTC, or Unix seconds), optional event_id, quantity, price. A column
named like a field needs no --map. Rows without event_id get one derived from the file name, the
line and the row, so a row published twice counts once.

Resumes after the last line whose message the broker acknowledged (FILE.backfill-offset); bad
rows are printed with their line and written to FILE.rejects.jsonl. Exit codes: 0 done (rows may
have been rejected, unless --strict: then 1), 1 not every message acknowledged or stopped by a
signal (run again to resume), 2 the file, mapping or settings cannot work.

  recstream backfill items online_retail.csv.gz --map item_id=StockCode --map title=Description
  recstream backfill events online_retail.csv.gz --map user_id=CustomerID \\
      --map item_id=StockCode --map timestamp=InvoiceDate --set type=purchase \\
      --map quantity=Quantity --map price=UnitPrice --rate 500
"""


def add_backfill_parser(sub: Any, add_settings: Callable[..., None]) -> argparse.ArgumentParser:
    """The ``backfill`` subcommand and its options; ``add_settings(parser, *groups)`` adds the
    settings' options of those groups (``stream.cli``)."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "backfill",
        help=HELP,
        description=HELP + ".",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=["items", "events"], help="catalogue items or behaviour")
    parser.add_argument("file", type=Path, help="CSV (with a header) or JSON lines; .gz read too")
    parser.add_argument(
        "--format",
        choices=["csv", "jsonl"],
        default=None,
        help="[from the name: .csv, .tsv, .jsonl, .ndjson, .json]",
    )
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="the column (JSON key) holding a field; repeat for each (--map item_id=StockCode)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a value for every row that has none (--set type=purchase --set currency=GBP)",
    )
    parser.add_argument(
        "--time-format",
        default=None,
        help="strptime format of CSV times that are neither ISO 8601 nor Unix seconds",
    )
    parser.add_argument(
        "--rate", type=float, default=None, help="messages per second at most [no limit]"
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="stop after publishing N rows (resume later)"
    )
    parser.add_argument(
        "--resume-file", type=Path, default=None, help="the resume point [FILE.backfill-offset]"
    )
    parser.add_argument(
        "--rejects-file", type=Path, default=None, help="bad rows [FILE.rejects.jsonl]"
    )
    parser.add_argument(
        "--restart", action="store_true", help="forget the resume point: from the first row"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 if any row was rejected")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (shown on a terminal)"
    )
    add_settings(parser, "kafka", "startup", "logs")
    return parser


def run_backfill(settings: Settings, args: argparse.Namespace, stop: threading.Event) -> int:
    """Run the command; the exit code (see the epilog)."""
    from confluent_kafka import KafkaException

    from stream.backfill.publish import BackfillRequest, DeliveryFailed, backfill
    from stream.backfill.rows import BadInput, ColumnMap, parse_pairs

    def fail(text: str, code: int = 2) -> int:
        print(f"recstream: {text}", file=sys.stderr)
        return code

    path: Path = args.file
    if not path.is_file():
        return fail(f"no file at {path}: check the path")
    if args.rate is not None and args.rate <= 0:
        return fail("--rate must be above 0")
    if args.limit is not None and args.limit < 0:
        return fail("--limit must not be negative")
    try:
        columns = ColumnMap(
            args.kind,
            parse_pairs(args.map, args.kind, "--map"),
            parse_pairs(args.set, args.kind, "--set"),
            args.time_format,
        )
        request = BackfillRequest(
            args.kind,
            path,
            columns,
            fmt=args.format,
            rate=args.rate,
            limit=args.limit,
            resume_file=args.resume_file,
            rejects_file=args.rejects_file,
            restart=args.restart,
            progress=False if args.no_progress else None,
        )
        report = backfill(settings, request, stop)
    except (BadInput, ValueError) as exc:  # the file or mapping, or the resume file
        return fail(str(exc))
    except KafkaException as exc:
        return fail(
            f"cannot reach the broker at {settings.kafka_bootstrap} ({exc.args[0]}): "
            "check RECSTREAM_KAFKA_BOOTSTRAP and the security settings"
        )
    except DeliveryFailed as exc:
        return fail(str(exc), 1)
    print(
        f"{report.topic}: published {report.published:,} rows, rejected {report.rejected:,}"
        + (f" after line {report.resumed_after:,}" if report.resumed_after else "")
        + f" in {report.seconds:.1f} s; up to line {report.last_line:,} done"
        + (
            f" ({report.total_published:,} published, {report.total_rejected:,} rejected "
            "in all runs)"
            if report.resumed_after
            else ""
        )
    )
    if report.rejected:
        print(f"rejected rows: {request.rejects_path}")
    if report.stopped:
        return fail(f"stopped; run again to resume after line {report.last_line}", 1)
    if not report.complete:
        print(f"stopped at --limit; run again to resume after line {report.last_line}")
    return 1 if args.strict and report.rejected else 0
