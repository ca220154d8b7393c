"""Publishing a file's rows to the input topic, paced, resumable, every delivery confirmed.

At least once: the resume point advances only after ``flush`` returned with every message
acknowledged, so a run stopped anywhere (a kill, a broker that stops answering) republishes at
most the rows after the last point. Republished rows carry the event ids they had the first time
(from the file, or derived from the file name, line and row), so the behaviour consumer counts
them once, and a catalogue event that is not newer than the stored item changes nothing.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

import structlog
from confluent_kafka import KafkaError, Message, Producer

from stream.backfill.rows import (
    ColumnMap,
    Format,
    Kind,
    Reject,
    check_header,
    count_lines,
    csv_header,
    file_format,
    read_rows,
    to_message,
)
from stream.backfill.state import Pace, ResumePoint, file_head, reject_line, trim_rejects
from stream.kafka.config import producer_config
from stream.kafka.topics import behaviour_topics, catalog_topics, ensure_topics
from stream.settings import Settings

log = structlog.get_logger(__name__)

SHOWN_REJECTS = 50
"""Rejects printed as they come; the rejects file has every one."""


class DeliveryFailed(RuntimeError):
    """The broker did not acknowledge some messages; the resume point stayed before them."""


class ProducerLike(Protocol):
    """What the backfill needs of a confluent-kafka producer."""

    def produce(self, topic: str, **kwargs: Any) -> None: ...
    def poll(self, timeout: float = ...) -> int: ...
    def flush(self, timeout: float = ...) -> int: ...


@dataclass(frozen=True)
class BackfillRequest:
    """What to publish, from where, and how."""

    kind: Kind
    path: Path
    columns: ColumnMap
    fmt: str | None = None
    rate: float | None = None
    """Messages a second at most; None: as fast as the broker takes them."""
    limit: int | None = None
    """Stop after publishing this many messages (a later run resumes after them)."""
    resume_file: Path | None = None
    rejects_file: Path | None = None
    restart: bool = False
    progress: bool | None = None
    """Show a progress bar: True, False, or None for only on a terminal."""
    delivery_timeout_s: float = 30.0
    checkpoint_rows: int = 1_000
    checkpoint_s: float = 1.0

    @property
    def resume_path(self) -> Path:
        return self.resume_file or self.path.with_name(self.path.name + ".backfill-offset")

    @property
    def rejects_path(self) -> Path:
        return self.rejects_file or self.path.with_name(self.path.name + ".rejects.jsonl")


@dataclass
class BackfillReport:
    """What a run did."""

    topic: str
    resumed_after: int | None
    published: int = 0
    rejected: int = 0
    rejected_lines: list[int] = field(default_factory=list)
    last_line: int = 0
    complete: bool = False
    stopped: bool = False
    seconds: float = 0.0
    total_published: int = 0
    total_rejected: int = 0


def input_topic(settings: Settings, kind: Kind) -> str:
    """The topic the consumer of ``kind`` reads."""
    return settings.topic_items if kind == "items" else settings.topic_user_events


def backfill(
    settings: Settings,
    request: BackfillRequest,
    stop: threading.Event | None = None,
    say: Callable[[str], None] = lambda text: print(text, file=sys.stderr),
    producer_factory: Callable[[dict[str, Any]], ProducerLike] | None = None,
) -> BackfillReport:
    """Publish the file's valid rows to the input topic of ``request.kind``, resuming after the
    saved point unless ``request.restart``; bad rows go to the rejects file and to ``say``.

    Raises BadInput (the file or mapping cannot work), StateMismatch or ValueError (the resume
    file), DeliveryFailed (unacknowledged messages; the point stays before them).
    """
    fmt: Format = file_format(request.path, request.fmt)
    if fmt == "csv":
        check_header(request.columns, csv_header(request.path))
    topic = input_topic(settings, request.kind)
    if request.restart:
        request.resume_path.unlink(missing_ok=True)
        request.rejects_path.unlink(missing_ok=True)
    point = ResumePoint.load(request.resume_path, request.kind, topic)
    if point is None:
        stamp = datetime.now(UTC).isoformat()
        point = ResumePoint(request.kind, topic, 0, 0, 0, stamp, head=file_head(request.path))
        request.rejects_path.unlink(missing_ok=True)
    else:
        point.check_head(request.path)
        trim_rejects(request.rejects_path, point.line)
    report = BackfillReport(topic, point.line if point.line else None)
    ensure_topics(
        settings,
        catalog_topics(settings) if request.kind == "items" else behaviour_topics(settings),
    )
    config = {
        **producer_config(settings),
        "message.timeout.ms": int(request.delivery_timeout_s * 1000),
    }
    run = _Run(settings, request, fmt, point, report, _factory(producer_factory)(config), say)
    run.publish(stop or threading.Event())
    log.info(
        "backfill.finished",
        topic=topic,
        published=report.published,
        rejected=report.rejected,
        last_line=report.last_line,
        complete=report.complete,
    )
    return report


def _factory(
    given: Callable[[dict[str, Any]], ProducerLike] | None,
) -> Callable[[dict[str, Any]], ProducerLike]:
    # confluent-kafka's stubs type produce() more loosely than the Protocol; it is one.
    return given or cast("Callable[[dict[str, Any]], ProducerLike]", Producer)


class _Run:
    """One run's loop and checkpoints."""

    def __init__(
        self,
        settings: Settings,
        request: BackfillRequest,
        fmt: Format,
        point: ResumePoint,
        report: BackfillReport,
        producer: ProducerLike,
        say: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.request = request
        self.fmt = fmt
        self.point = point
        self.report = report
        self.producer = producer
        self.say = say
        self.failures: list[str] = []
        self.done_line = point.line
        self.before = (point.published, point.rejected)
        self.unsaved = 0
        self.saved_at = time.monotonic()

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failures.append(str(err))

    def publish(self, stop: threading.Event) -> None:
        from tqdm import tqdm

        request, report = self.request, self.report
        show = request.progress if request.progress is not None else sys.stderr.isatty()
        total = count_lines(request.path) if show else None
        bar = tqdm(
            total=total, initial=self.point.line, unit=" lines", disable=not show, file=sys.stderr
        )
        pace = Pace(request.rate)
        t0 = time.monotonic()
        try:
            with request.rejects_path.open("a", encoding="utf-8") as rejects:
                for row in read_rows(request.path, self.fmt):
                    if row.line <= self.point.line:
                        continue
                    if stop.is_set():
                        report.stopped = True
                        break
                    if request.limit is not None and report.published >= request.limit:
                        break
                    result = to_message(
                        row,
                        request.columns,
                        self.fmt,
                        request.path.name,
                        self.point.stamp,
                        self.settings.max_message_bytes,
                    )
                    if isinstance(result, Reject):
                        self._reject(result, rejects, bar.write if show else self.say)
                    else:
                        pace.wait()
                        self._produce(result.key, result.value)
                        report.published += 1
                    self.done_line = row.line
                    self.unsaved += 1
                    bar.update(row.line - bar.n)
                    if (
                        self.unsaved >= request.checkpoint_rows
                        or time.monotonic() - self.saved_at >= request.checkpoint_s
                    ):
                        self._checkpoint(rejects, complete=False)
                else:
                    report.complete = True
                self._checkpoint(rejects, complete=report.complete)
        finally:
            bar.close()
            report.seconds = time.monotonic() - t0
        report.last_line = self.point.line
        report.total_published = self.point.published
        report.total_rejected = self.point.rejected

    def _reject(self, reject: Reject, rejects: Any, say: Callable[[str], None]) -> None:
        report = self.report
        rejects.write(reject_line(reject.line, reject.reason, reject.row))
        report.rejected += 1
        if len(report.rejected_lines) < SHOWN_REJECTS:
            report.rejected_lines.append(reject.line)
            say(f"line {reject.line}: {reject.reason}")
        elif report.rejected == SHOWN_REJECTS + 1:
            say(f"... further rejects only in {self.request.rejects_path}")

    def _produce(self, key: bytes, value: bytes) -> None:
        topic = self.report.topic
        while True:
            try:
                self.producer.produce(topic, key=key, value=value, on_delivery=self._delivered)
                break
            except BufferError:
                self.producer.poll(0.1)  # the local queue is full: let deliveries drain
        self.producer.poll(0)

    def _checkpoint(self, rejects: Any, complete: bool) -> None:
        """Wait for every delivery; then, and only then, move the resume point."""
        remaining = self.producer.flush(self.request.delivery_timeout_s + 5.0)
        if remaining or self.failures:
            raise DeliveryFailed(
                f"{remaining + len(self.failures)} messages to {self.report.topic} not "
                f"acknowledged ({'; '.join(self.failures[:3]) or 'timed out'}); the resume "
                f"point stays at line {self.point.line}: run again to resume"
            )
        rejects.flush()
        self.point = ResumePoint(
            self.point.kind,
            self.point.topic,
            self.done_line,
            self.before[0] + self.report.published,
            self.before[1] + self.report.rejected,
            self.point.stamp,
            complete,
            self.point.head,
        )
        self.point.save(self.request.resume_path)
        self.unsaved = 0
        self.saved_at = time.monotonic()
