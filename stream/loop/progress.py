"""What a consumer has done so far, kept by its loop and read from other threads (the demo, tests,
the metrics endpoint) while it runs. Only the loop's thread writes; a reader copies a mapping
before iterating it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from stream.kafka.dlq import HEADER_ERROR
from stream.loop.durations import Durations
from stream.loop.protocol import Output

log = structlog.get_logger(__name__)

STAGES = ("process", "publish", "confirm", "commit")
"""The loop's stages of a finished batch; a processor may report parts of ``process`` as well
(:attr:`stream.loop.protocol.BatchResult.seconds`)."""

_NO_OFFSET = -1001  # librdkafka's RD_KAFKA_OFFSET_INVALID in statistics


@dataclass
class Progress:
    """Counters of one consumer. ``stage_seconds``: the durations of each stage of the attempt
    that went through; ``batch_seconds``: from the start of a batch's finish to its commit,
    retries included."""

    batches: int = 0
    events: int = 0
    outputs: int = 0
    dead_letters: int = 0
    last_batch_at: float = 0.0
    totals: dict[str, int] = field(default_factory=dict)
    stage_seconds: dict[str, Durations] = field(
        default_factory=lambda: {stage: Durations() for stage in STAGES}
    )
    batch_seconds: Durations = field(default_factory=Durations)
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    """Dead letters published, by reason code (their ``recstream.error`` header)."""
    retries: int = 0
    """Failed attempts at a batch that were retried."""
    store_errors: int = 0
    """Of those, the ones the store (not the broker) failed."""
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    """Per assigned (topic, partition): messages between the last commit and the end of the
    partition, as of librdkafka's last statistics report (replaced whole by each report)."""

    def finished(
        self,
        events: int,
        outputs: Sequence[Output],
        counts: Mapping[str, int],
        seconds: Mapping[str, float],
        batch_s: float,
        at: float,
    ) -> None:
        """Count a committed batch: its events, outputs, the processor's counts and the stage
        durations (the loop's and the processor's own)."""
        for stage, s in seconds.items():
            durations = self.stage_seconds.get(stage)
            if durations is None:
                # a new dict, not a new key: a reader may be iterating the old one
                durations = Durations()
                self.stage_seconds = {**self.stage_seconds, stage: durations}
            durations.observe(s)
        self.batch_seconds.observe(batch_s)
        self.batches += 1
        self.events += events
        self.outputs += len(outputs)
        self.dead_letters += counts.get("dead_letters", 0)
        self.last_batch_at = at
        totals = dict(self.totals)
        for name, n in counts.items():
            totals[name] = totals.get(name, 0) + n
        self.totals = totals
        reasons = dead_letter_reasons(outputs)
        if reasons:
            merged = dict(self.dead_letter_reasons)
            for reason, n in reasons.items():
                merged[reason] = merged.get(reason, 0) + n
            self.dead_letter_reasons = merged

    def failed(self, store: bool) -> None:
        """Count a failed attempt that will be retried; ``store``: the store failed it."""
        self.retries += 1
        self.store_errors += int(store)

    def statistics(self, report: str) -> None:
        """Take the lag from a librdkafka statistics report (``stats_cb``)."""
        try:
            self.lag = lag_from_statistics(json.loads(report))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("consumer.statistics_unreadable", error=str(exc)[:300])


def dead_letter_reasons(outputs: Sequence[Output]) -> dict[str, int]:
    """How many of ``outputs`` are dead letters, by reason code."""
    reasons: dict[str, int] = {}
    for out in outputs:
        if not out.headers:  # lists and recommendations carry none
            continue
        for name, value in out.headers:
            if name == HEADER_ERROR:
                if isinstance(value, bytes):
                    value = value.decode("utf-8", "replace")
                reasons[value or ""] = reasons.get(value or "", 0) + 1
                break
    return reasons


def lag_from_statistics(report: Mapping[str, Any]) -> dict[tuple[str, int], int]:
    """Per partition assigned to this consumer: its end (the last stable offset, which is the
    high watermark without transactions) less the committed offset, or less its first offset
    when nothing was committed yet (the group starts at the earliest message)."""
    lag: dict[tuple[str, int], int] = {}
    for topic, t in (report.get("topics") or {}).items():
        for p in (t.get("partitions") or {}).values():
            partition = int(p["partition"])
            if partition < 0 or not p.get("desired"):
                continue  # librdkafka's internal "unassigned" entry, or not ours
            end = p["ls_offset"] if p["ls_offset"] >= 0 else p["hi_offset"]
            if end < 0:
                continue  # no fetch answered yet: unknown
            start = p["committed_offset"]
            if start == _NO_OFFSET:
                start = max(0, p["lo_offset"])
            lag[(topic, partition)] = max(0, end - start)
    return lag
