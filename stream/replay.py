"""Replaying dead letters into the topic they came from (``recstream replay-dlq``).

After a fix (a larger ``RECSTREAM_MAX_MESSAGE_BYTES``, a corrected producer, a new release),
dead letters can be sent through the consumers again. Each dead letter's original key and value
go, unchanged, to the topic *and partition* its ``recstream.source`` header names (the same
partition keeps each key's events in one partition, whatever partitioner wrote them), with a
``recstream.replayed-from: <dlq topic>/<partition>/<offset>`` header.

Only into the DLQ's own topic: ``<topic>.dlq`` replays to ``<topic>`` and to partitions it has.
A header naming another topic or a partition the topic lacks (a damaged or forged header, a
topic re-created with fewer partitions) is refused and counted, never written elsewhere.

Safe to run twice: once a replay is acknowledged, its DLQ position is recorded in the compacted
topic ``<dlq topic>.replayed`` (key = the position, value = where the replay landed), and later
runs skip recorded positions. A run stopped between the replay and the record replays that dead
letter again next time (at least once); the consumers' effects are idempotent per event. A
replayed event that fails again becomes a new dead letter (a new position), which a later run
replays again unless filtered by ``reason``; one run reads each DLQ partition only up to the end
it had when the run reached it, so it never chases its own replays. Run one replay at a time per
DLQ topic. The DLQ is streamed: memory does not grow with its size.

A dead letter whose key or value was cut to fit the DLQ (``recstream.truncated``) is skipped,
counted and reported: its original bytes are gone, and the cut ones would only come back as a
new ``invalid_json`` (or ``key_mismatch``) dead letter. One cut only in the original message's
own headers is replayed: a replay never carries them.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient

from schemas.source import source_of
from stream.kafka.config import client_config, producer_config
from stream.kafka.dlq import HEADER_ERROR, HEADER_SOURCE
from stream.kafka.fit import HEADER_TRUNCATED
from stream.kafka.inspect import Record, iter_topic
from stream.kafka.topics import COMPACT, ensure_topics
from stream.settings import Settings

log = structlog.get_logger(__name__)

HEADER_REPLAYED_FROM = "recstream.replayed-from"
_DLQ_SUFFIX = ".dlq"
TIMEOUT_S = 30.0
"""How long the broker may stay silent (metadata, reading, acknowledgements) before a run stops."""
REFUSALS_SHOWN = 10

REPLAYED = "replayed"
WOULD_REPLAY = "would replay"
ALREADY_REPLAYED = "already replayed"
OTHER_REASON = "other reason"
OVER_LIMIT = "over limit"
TRUNCATED = "truncated"
REFUSED = "refused"
OUTCOMES = (REPLAYED, WOULD_REPLAY, ALREADY_REPLAYED, OTHER_REASON, OVER_LIMIT, TRUNCATED, REFUSED)


class ReplayFailed(RuntimeError):
    """The run could not finish: replays the broker did not acknowledge (they are not recorded
    as replayed), or a broker that did not answer in time."""


class ReplayTimedOut(ReplayFailed):
    """The broker did not answer (metadata, the DLQ's records) within the run's timeout."""


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
    """What a run did (or, in a dry run, would do): counts, whatever the DLQ's size, and the
    first refusals with why."""

    dlq_topic: str
    dry_run: bool
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(reason code, outcome) -> dead letters."""
    targets: Counter[str] = field(default_factory=Counter)
    refusals: list[ReplayDecision] = field(default_factory=list)
    """The first :data:`REFUSALS_SHOWN` refused dead letters."""

    def add(self, decision: ReplayDecision) -> None:
        self.counts[(decision.reason, decision.outcome)] += 1
        if decision.outcome in (WOULD_REPLAY, REPLAYED) and decision.target:
            self.targets[decision.target] += 1
        if decision.outcome == REFUSED and len(self.refusals) < REFUSALS_SHOWN:
            self.refusals.append(decision)

    def count(self, outcome: str) -> int:
        return sum(n for (_, o), n in self.counts.items() if o == outcome)

    @property
    def total(self) -> int:
        """Dead letters read."""
        return sum(self.counts.values())

    @property
    def replayed(self) -> int:
        """Dead letters replayed (in a dry run: that would be)."""
        return self.count(WOULD_REPLAY if self.dry_run else REPLAYED)

    def by_reason(self) -> dict[str, Counter[str]]:
        """reason -> outcome -> count."""
        table: dict[str, Counter[str]] = {}
        for (reason, outcome), n in self.counts.items():
            table.setdefault(reason, Counter())[outcome] += n
        return dict(sorted(table.items()))

    def by_target(self) -> dict[str, int]:
        return dict(sorted(self.targets.items()))


def replayed_topic(dlq_topic: str) -> str:
    """The compacted topic recording which positions of ``dlq_topic`` were replayed."""
    return f"{dlq_topic}.replayed"


def source_topic(dlq_topic: str) -> str:
    """The topic a DLQ's dead letters came from: ``<topic>`` for ``<topic>.dlq``."""
    topic = dlq_topic.removesuffix(_DLQ_SUFFIX)
    if topic == dlq_topic or not topic or topic.endswith(_DLQ_SUFFIX):
        raise ValueError(f"{dlq_topic} is not a dead-letter topic (<input topic>.dlq)")
    return topic


def _position(topic: str, record: Record) -> str:
    return source_of(topic, record.partition, record.offset)


@dataclass
class ReplayPlan:
    """Decides, dead letter by dead letter in DLQ order, what happens to each. Pure: no I/O.

    ``partitions``: the source topic's partitions (none when it does not exist); ``done``: the
    DLQ positions already replayed.
    """

    dlq_topic: str
    partitions: frozenset[int]
    done: set[str]
    dry_run: bool
    reason: str | None = None
    limit: int | None = None
    chosen: int = 0

    def decide(self, record: Record) -> ReplayDecision:
        position = _position(self.dlq_topic, record)
        why = record.headers.get(HEADER_ERROR, b"").decode("utf-8", "replace") or "(none)"
        if self.reason is not None and why != self.reason:
            return ReplayDecision(position, why, OTHER_REASON)
        if position in self.done:
            return ReplayDecision(position, why, ALREADY_REPLAYED)
        cut = _cut(record)
        if cut:
            return ReplayDecision(position, why, TRUNCATED, note=f"{HEADER_TRUNCATED}: {cut}")
        target = self._target(record)
        if isinstance(target, str):
            return ReplayDecision(position, why, REFUSED, note=target)
        where = f"{target[0]}/{target[1]}"
        if self.limit is not None and self.chosen >= self.limit:
            return ReplayDecision(position, why, OVER_LIMIT, where)
        self.chosen += 1
        return ReplayDecision(position, why, WOULD_REPLAY if self.dry_run else REPLAYED, where)

    def _target(self, record: Record) -> tuple[str, int] | str:
        """(topic, partition) to replay to, or why the dead letter cannot be replayed."""
        raw = record.headers.get(HEADER_SOURCE)
        if not raw:
            return f"no {HEADER_SOURCE} header"
        text = raw.decode("utf-8", "replace")
        parts = text.rsplit("/", 2)
        number = parts[1] if len(parts) == 3 else ""
        # at most 10 digits: a partition number, and int() of thousands of digits raises
        if not (number.isascii() and number.isdigit() and len(number) <= 10):
            return f"malformed {HEADER_SOURCE} header {text[:80]!r} (topic/partition/offset)"
        topic, partition = parts[0], int(parts[1])
        expected = source_topic(self.dlq_topic)
        if topic != expected:
            return f"source {topic[:80]!r} is not {expected}, the topic {self.dlq_topic} replays to"
        if partition not in self.partitions:
            have = f"{len(self.partitions)} partitions" if self.partitions else "does not exist"
            return f"{expected} has no partition {partition} ({have})"
        return topic, partition


def _cut(record: Record) -> str:
    """What the ``recstream.truncated`` header says was cut of the failed message's key or
    value; '' when nothing was, or only its own headers (which a replay never carries)."""
    raw = record.headers.get(HEADER_TRUNCATED)
    if raw is None:
        return ""
    text = raw.decode("utf-8", "replace")
    return "" if set(text.split(",")) == {"headers"} else text[:80] or "(empty)"


def replay_dead_letters(
    settings: Settings,
    dlq_topic: str,
    dry_run: bool,
    reason: str | None = None,
    limit: int | None = None,
) -> ReplayReport:
    """Replay the dead letters of ``dlq_topic`` (read to its current end) not replayed before.

    ``reason`` keeps only dead letters with that ``recstream.error`` code; ``limit`` caps how
    many are replayed in this run. A dry run publishes nothing. Raises ValueError for a topic
    that is not a DLQ, :class:`ReplayTimedOut` when the broker stays silent for
    :data:`TIMEOUT_S`, :class:`ReplayFailed` when it did not acknowledge every replay (the
    acknowledged ones are recorded).
    """
    topic = source_topic(dlq_topic)
    report = ReplayReport(dlq_topic, dry_run)
    try:
        partitions = _partitions(settings, topic)
        done = _already_replayed(settings, dlq_topic)
        plan = ReplayPlan(dlq_topic, partitions, done, dry_run, reason, limit)
        replayer: _Replayer | None = None
        try:
            for record in iter_topic(settings, dlq_topic, TIMEOUT_S):
                decision = plan.decide(record)
                report.add(decision)
                if decision.outcome == REPLAYED:
                    replayer = replayer or _Replayer(settings, dlq_topic)
                    replayer.send(record, decision)
        finally:
            if replayer is not None:
                replayer.finish()  # records what landed, even when the reading failed
    except TimeoutError as exc:
        raise ReplayTimedOut(f"{exc} (is {settings.kafka_bootstrap} reachable?)") from None
    except KafkaException as exc:
        raise ReplayFailed(f"the broker at {settings.kafka_bootstrap}: {_text(exc)}") from None
    log.info(
        "replay.finished",
        dlq_topic=dlq_topic,
        dry_run=dry_run,
        dead_letters=report.total,
        **{outcome.replace(" ", "_"): report.count(outcome) for outcome in OUTCOMES},
    )
    return report


def _partitions(settings: Settings, topic: str) -> frozenset[int]:
    """The partitions ``topic`` has (none when it does not exist). All topics' metadata: a
    request naming one topic may create it on a broker that creates topics on demand."""
    admin = AdminClient(client_config(settings))
    try:
        metadata = admin.list_topics(timeout=TIMEOUT_S)
    except KafkaException as exc:
        raise TimeoutError(f"no metadata in {TIMEOUT_S:g} s: {_text(exc)}") from None
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        return frozenset()
    return frozenset(found.partitions)


def _text(exc: KafkaException) -> str:
    """librdkafka's own words for an error, without the KafkaError{...} wrapping."""
    err = exc.args[0] if exc.args else exc
    return str(err.str()) if isinstance(err, KafkaError) else str(err)


def _already_replayed(settings: Settings, dlq_topic: str) -> set[str]:
    """The positions recorded as replayed (only the keys are kept, never the DLQ's values)."""
    latest: dict[str, bool] = {}
    for record in iter_topic(settings, replayed_topic(dlq_topic), TIMEOUT_S):
        if record.key is not None:
            # a tombstone (null value) un-records a position, so that it can be replayed again
            latest[record.key.decode("utf-8", "replace")] = record.value is not None
    return {position for position, recorded in latest.items() if recorded}


class _Replayer:
    """Publishes replays as they are decided and records each once the broker acknowledged it."""

    def __init__(self, settings: Settings, dlq_topic: str) -> None:
        ensure_topics(settings, {replayed_topic(dlq_topic): COMPACT})
        self.dlq_topic = dlq_topic
        self.producer = Producer(producer_config(settings))
        self.sent = 0
        self.acknowledged = 0
        self.landed: list[tuple[str, str]] = []  # acknowledged, not yet recorded
        self.failures = 0
        self.errors: list[str] = []  # the first few, for the message

    def _failed(self, what: str) -> None:
        self.failures += 1
        if len(self.errors) < 3:
            self.errors.append(what)

    def send(self, record: Record, decision: ReplayDecision) -> None:
        assert decision.target is not None
        topic, partition = decision.target.rsplit("/", 1)
        position = decision.position

        def on_replay(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                self._failed(f"{position}: {err}")
            else:
                self.acknowledged += 1
                self.landed.append(
                    (position, source_of(msg.topic(), msg.partition(), msg.offset()))
                )

        _produce(
            self.producer,
            topic,
            key=record.key,
            value=record.value,
            partition=int(partition),
            headers=[(HEADER_REPLAYED_FROM, position.encode())],
            on_delivery=on_replay,
        )
        self.sent += 1
        self.producer.poll(0)
        self._record_landed()

    def _record_landed(self) -> None:
        now = datetime.now(UTC).isoformat()
        while self.landed:
            position, where = self.landed.pop()
            marker = json.dumps({"replayed_to": where, "replayed_at": now}).encode()
            _produce(
                self.producer,
                replayed_topic(self.dlq_topic),
                key=position.encode(),
                value=marker,
                on_delivery=self._on_record,
            )

    def _on_record(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failed(f"record of a replay: {err}")

    def finish(self) -> None:
        """Wait for the replays, record the acknowledged ones; ReplayFailed unless all went."""
        self.producer.flush(TIMEOUT_S)
        self._record_landed()
        remaining = self.producer.flush(TIMEOUT_S)
        missing = self.sent - self.acknowledged
        if self.failures or remaining or missing:
            raise ReplayFailed(
                f"{missing} of {self.sent} replays not acknowledged, {remaining} messages "
                "undelivered: " + "; ".join(self.errors)
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
        f"of {report.total} dead letters"
    ]
    for row in [header, *rows]:
        rest = zip(row[1:], widths[1:], strict=True)
        cells = [row[0].ljust(widths[0]), *(v.rjust(w) for v, w in rest)]
        lines.append("  ".join(cells).rstrip())
    for target, n in report.by_target().items():
        lines.append(f"  -> {target}: {n}")
    for d in report.refusals:
        lines.append(f"  refused {d.position}: {d.note}")
    truncated = report.count(TRUNCATED)
    if truncated:
        lines.append(
            f"  skipped {truncated} truncated: cut to fit the DLQ ({HEADER_TRUNCATED}), their "
            "original bytes are gone (a replay would be a new invalid_json dead letter)"
        )
    refused = report.count(REFUSED)
    if refused > len(report.refusals):
        lines.append(f"  ... and {refused - len(report.refusals)} more refused")
    return "\n".join(lines)
