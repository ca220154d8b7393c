"""Replaying dead letters into the topic they came from (``recstream replay-dlq``).

After a fix (a larger ``RECSTREAM_MAX_MESSAGE_BYTES``, a corrected producer, a new release),
dead letters can be sent through the consumers again. Each dead letter's original key and value
go, unchanged, to the topic *and partition* its ``recstream.source`` header names (the same
partition keeps each key's events in one partition, whatever partitioner wrote them), with a
``recstream.replayed-from: <dlq topic>/<partition>/<offset>`` header.

Safe to run twice: once a replay is acknowledged, its DLQ position is recorded in the compacted
topic ``<dlq topic>.replayed`` (key = the position, value = where the replay landed), and later
runs skip recorded positions. A run stopped between the replay and the record replays that dead
letter again next time (at least once); the consumers' effects are idempotent per event. A
replayed event that fails again becomes a new dead letter (a new position), which a later run
replays again unless filtered by ``reason``. Run one replay at a time per DLQ topic.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from confluent_kafka import KafkaError, Message, Producer

from schemas.source import source_of
from stream.kafka.config import producer_config
from stream.kafka.dlq import HEADER_ERROR, HEADER_SOURCE
from stream.kafka.inspect import Record, latest_by_key, scan_topic
from stream.kafka.topics import COMPACT, ensure_topics
from stream.settings import Settings

log = structlog.get_logger(__name__)

HEADER_REPLAYED_FROM = "recstream.replayed-from"
_FLUSH_TIMEOUT_S = 30.0

REPLAYED = "replayed"
WOULD_REPLAY = "would replay"
ALREADY_REPLAYED = "already replayed"
OTHER_REASON = "other reason"
OVER_LIMIT = "over limit"
REFUSED = "refused"
OUTCOMES = (REPLAYED, WOULD_REPLAY, ALREADY_REPLAYED, OTHER_REASON, OVER_LIMIT, REFUSED)


class ReplayFailed(RuntimeError):
    """Some replays were not acknowledged by the broker (they are not recorded as replayed)."""


@dataclass(frozen=True)
class ReplayDecision:
    """What happens to one dead letter."""

    position: str
    """``<dlq topic>/<partition>/<offset>``."""
    reason: str
    outcome: str
    target: str | None = None
    """``<topic>/<partition>`` for a (would-be) replay."""
    note: str = ""


@dataclass
class ReplayReport:
    """What a run did (or, in a dry run, would do), dead letter by dead letter."""

    dlq_topic: str
    dry_run: bool
    decisions: list[ReplayDecision] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for d in self.decisions if d.outcome == outcome)

    @property
    def replayed(self) -> int:
        """Dead letters replayed (in a dry run: that would be)."""
        return self.count(WOULD_REPLAY if self.dry_run else REPLAYED)

    def by_reason(self) -> dict[str, Counter[str]]:
        """reason -> outcome -> count."""
        table: dict[str, Counter[str]] = {}
        for d in self.decisions:
            table.setdefault(d.reason, Counter())[d.outcome] += 1
        return dict(sorted(table.items()))

    def by_target(self) -> dict[str, int]:
        done = (WOULD_REPLAY, REPLAYED)
        targets = Counter(d.target for d in self.decisions if d.outcome in done and d.target)
        return dict(sorted(targets.items()))


def replayed_topic(dlq_topic: str) -> str:
    """The compacted topic recording which positions of ``dlq_topic`` were replayed."""
    return f"{dlq_topic}.replayed"


def _position(topic: str, record: Record) -> str:
    return source_of(topic, record.partition, record.offset)


def _source(record: Record) -> tuple[str, int] | str:
    """(topic, partition) of the dead letter's origin, or why it cannot be replayed."""
    raw = record.headers.get(HEADER_SOURCE)
    if not raw:
        return f"no {HEADER_SOURCE} header"
    parts = raw.decode("utf-8", "replace").rsplit("/", 2)
    if len(parts) != 3 or not parts[0] or not parts[1].isdigit():
        return f"malformed {HEADER_SOURCE} header"
    topic, partition = parts[0], int(parts[1])
    if topic.endswith(".dlq"):
        return f"source {topic} is a dead-letter topic"
    return topic, partition


def _already_replayed(settings: Settings, dlq_topic: str) -> set[str]:
    records, _ = scan_topic(settings, replayed_topic(dlq_topic))
    # a tombstone (null value) un-records a position, so that it can be replayed again
    return {
        key.decode("utf-8", "replace")
        for key, value in latest_by_key(records).items()
        if key is not None and value is not None
    }


def plan_replay(
    records: list[Record],
    dlq_topic: str,
    done: set[str],
    dry_run: bool,
    reason: str | None = None,
    limit: int | None = None,
) -> list[ReplayDecision]:
    """Decide, in DLQ order, what to do with each dead letter. Pure: no I/O."""
    decisions = []
    chosen = 0
    for record in records:
        position = _position(dlq_topic, record)
        why = record.headers.get(HEADER_ERROR, b"").decode("utf-8", "replace") or "(none)"
        if reason is not None and why != reason:
            decisions.append(ReplayDecision(position, why, OTHER_REASON))
            continue
        if position in done:
            decisions.append(ReplayDecision(position, why, ALREADY_REPLAYED))
            continue
        source = _source(record)
        if isinstance(source, str):
            decisions.append(ReplayDecision(position, why, REFUSED, note=source))
            continue
        target = f"{source[0]}/{source[1]}"
        if limit is not None and chosen >= limit:
            decisions.append(ReplayDecision(position, why, OVER_LIMIT, target))
            continue
        chosen += 1
        outcome = WOULD_REPLAY if dry_run else REPLAYED
        decisions.append(ReplayDecision(position, why, outcome, target))
    return decisions


def replay_dead_letters(
    settings: Settings,
    dlq_topic: str,
    dry_run: bool,
    reason: str | None = None,
    limit: int | None = None,
) -> ReplayReport:
    """Replay the dead letters of ``dlq_topic`` (read to its current end) not replayed before.

    ``reason`` keeps only dead letters with that ``recstream.error`` code; ``limit`` caps how
    many are replayed in this run. A dry run publishes nothing. Raises :class:`ReplayFailed`
    when the broker did not acknowledge every replay (the acknowledged ones are recorded).
    """
    if not dlq_topic.endswith(".dlq"):
        raise ValueError(f"{dlq_topic} is not a dead-letter topic (<input topic>.dlq)")
    records, _ = scan_topic(settings, dlq_topic)
    done = _already_replayed(settings, dlq_topic)
    decisions = plan_replay(records, dlq_topic, done, dry_run, reason, limit)
    report = ReplayReport(dlq_topic, dry_run, decisions)
    todo = [d for d in decisions if d.outcome == REPLAYED]
    if todo:
        _replay(settings, dlq_topic, {_position(dlq_topic, r): r for r in records}, todo)
    log.info(
        "replay.finished",
        dlq_topic=dlq_topic,
        dry_run=dry_run,
        dead_letters=len(records),
        **{outcome.replace(" ", "_"): report.count(outcome) for outcome in OUTCOMES},
    )
    return report


def _replay(
    settings: Settings,
    dlq_topic: str,
    records: dict[str, Record],
    todo: list[ReplayDecision],
) -> None:
    """Publish the replays, then record the acknowledged ones."""
    ensure_topics(settings, {replayed_topic(dlq_topic): COMPACT})
    producer = Producer(producer_config(settings))
    landed: dict[str, str] = {}
    failed: list[str] = []

    def on_replay(position: str) -> Any:
        def report(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failed.append(f"{position}: {err}")
            else:
                landed[position] = source_of(msg.topic(), msg.partition(), msg.offset())

        return report

    def on_record(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            failed.append(f"record of a replay: {err}")

    for decision in todo:
        record = records[decision.position]
        assert decision.target is not None
        topic, partition = decision.target.rsplit("/", 1)
        _produce(
            producer,
            topic,
            key=record.key,
            value=record.value,
            partition=int(partition),
            headers=[(HEADER_REPLAYED_FROM, decision.position.encode())],
            on_delivery=on_replay(decision.position),
        )
    producer.flush(_FLUSH_TIMEOUT_S)
    now = datetime.now(UTC).isoformat()
    for position, where in sorted(landed.items()):
        marker = json.dumps({"replayed_to": where, "replayed_at": now}).encode()
        _produce(
            producer,
            replayed_topic(dlq_topic),
            key=position.encode(),
            value=marker,
            on_delivery=on_record,
        )
    remaining = producer.flush(_FLUSH_TIMEOUT_S)
    missing = len(todo) - len(landed)
    if failed or remaining or missing:
        raise ReplayFailed(
            f"{missing} of {len(todo)} replays not acknowledged, {remaining} messages "
            "undelivered: " + "; ".join(failed[:3])
        )


def _produce(producer: Producer, topic: str, **kwargs: Any) -> None:
    while True:
        try:
            producer.produce(topic, **kwargs)
            return
        except BufferError:
            producer.poll(0.1)  # local queue full: let deliveries drain


def format_report(report: ReplayReport) -> str:
    """The summary table ``recstream replay-dlq`` prints."""
    verb = "would replay" if report.dry_run else "replayed"
    columns = [WOULD_REPLAY if report.dry_run else REPLAYED, *OUTCOMES[2:]]
    header = ["reason", "dead letters", *columns]
    rows = []
    totals: Counter[str] = Counter()
    for reason, counts in report.by_reason().items():
        totals.update(counts)
        rows.append([reason, str(sum(counts.values())), *(str(counts[c]) for c in columns)])
    rows.append(["total", str(sum(totals.values())), *(str(totals[c]) for c in columns)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        f"{'dry run: ' if report.dry_run else ''}{report.dlq_topic}: {verb} {report.replayed} "
        f"of {len(report.decisions)} dead letters"
    ]
    for row in [header, *rows]:
        rest = zip(row[1:], widths[1:], strict=True)
        cells = [row[0].ljust(widths[0]), *(v.rjust(w) for v, w in rest)]
        lines.append("  ".join(cells).rstrip())
    for target, n in report.by_target().items():
        lines.append(f"  -> {target}: {n}")
    refused = [d for d in report.decisions if d.outcome == REFUSED]
    for d in refused[:10]:
        lines.append(f"  refused {d.position}: {d.note}")
    if len(refused) > 10:
        lines.append(f"  ... and {len(refused) - 10} more refused")
    return "\n".join(lines)
