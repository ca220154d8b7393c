"""The consumer loop every recstream consumer runs: poll, micro-batch, process, publish, commit.

This is where a closed batch (closed by :class:`stream.loop.batching.MicroBatcher`) is started and
finished (``_close``, ``_finish``) and where offsets are committed (``_commit``). With messages
waiting, batch N+1 is closed and handed to the processor's ``prepare`` before batch N is
finished, so that its model work runs beside N's publishing; batches are still finished and
committed one at a time, in order. At-least-once: offsets are committed only after the
processor's store writes and the publish of every output of the batch were acknowledged by the
broker. Processors make their effects idempotent, so work redone after a crash converges to the
same outputs.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Generic

import structlog
from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from stream.errors import Transient
from stream.kafka.config import consumer_config, producer_config
from stream.kafka.topics import ensure_topics
from stream.loop import heap
from stream.loop.batching import MicroBatcher
from stream.loop.progress import STAGES, Progress
from stream.loop.protocol import BatchResult, C, E, Owing, Preparing, Processor
from stream.loop.publish import DeliveryFailed, OutputRejected, publish
from stream.settings import Settings

log = structlog.get_logger(__name__)

_IDLE_POLL_S = 0.5
_FLUSH_TIMEOUT_S = 30.0
_PREPARED_WAIT_S = 10.0
_STATISTICS_INTERVAL_MS = 5_000  # librdkafka's reports, for the lag metric


class BatchAbandoned(RuntimeError):
    """Shutting down while a batch still fails, or the batch's work is superseded (the store
    serves another generation): it is left uncommitted for the next owner."""


RETRIABLE: tuple[type[Exception], ...] = (Transient, KafkaException)
"""Failures of the store or the broker, worth retrying; anything else stops the consumer
(:class:`OutputRejected` among them: a record the producer or broker refuses for good)."""

__all__ = ["RETRIABLE", "BatchAbandoned", "BatchConsumer", "DeliveryFailed", "OutputRejected"]


class BatchConsumer(Generic[E, C]):
    """Runs a :class:`Processor` over ``topic`` in consumer group ``group`` until stopped."""

    def __init__(
        self,
        settings: Settings,
        processor: Processor[E, C],
        topic: str,
        group: str,
        topics: Mapping[str, Mapping[str, str]] | None = None,
        consumer_factory: Callable[[dict[str, Any]], Consumer] = Consumer,
        producer_factory: Callable[[dict[str, Any]], Producer] = Producer,
        batch_lock: threading.Lock | None = None,
    ) -> None:
        self.settings = settings
        self.processor = processor
        self.topic = topic
        self.group = group
        self.topics = topics or {topic: {}}
        self.progress = Progress()
        self._consumer_factory = consumer_factory
        self._producer_factory = producer_factory
        self._batcher: MicroBatcher[tuple[E, Message]] = MicroBatcher(
            settings.batch_max_items,
            settings.batch_max_tokens,
            settings.batch_max_wait_ms / 1000,
        )
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._max_record_bytes: int = producer_config(settings)["message.max.bytes"]
        self._held: list[Message] = []
        self._pending: tuple[list[tuple[E, Message]], list[E]] | None = None
        """A closed batch, prepared, not finished yet: the next one is closed first."""
        self._sync_commits = False
        """Wait for each commit's answer: while partitions are revoked, and when stopping."""
        self.superseded: Callable[[], str | None] | None = None
        """Checked before each batch's outputs are published: a reason when the work no longer
        counts (the store switched generation: :mod:`stream.generations`). The consumer then
        stops without publishing or committing the batch."""
        self._finishing = False
        """A batch is being finished (a revoke fired inside its retries must not commit)."""
        self._in_flight: list[Message] = []
        """The messages of the batch being finished (read by :meth:`oldest_unfinished_at`)."""
        self._stop: threading.Event | None = None
        self._stopping_since: float | None = None
        self._batch_lock = batch_lock or contextlib.nullcontext()
        self._owned: set[tuple[str | None, int | None]] = set()
        self._revocations = 0
        """How many times partitions were revoked or lost so far."""
        self._revoked_at: dict[tuple[str | None, int | None], int] = {}
        """Per partition, ``_revocations`` when it was last revoked or lost: a message read
        before that is not ours to process, even if the partition was given back since."""
        self.paused = False
        """True while a failing batch is being retried (partitions paused)."""
        self._joined = False

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set, then finish the open batch (or abandon it after
        ``shutdown_timeout_s``), commit what is done and close."""
        s = self.settings
        self._stop = stop
        ensure_topics(s, self.topics)
        self._producer = self._producer_factory(producer_config(s))
        self._consumer = self._consumer_factory(
            {
                **consumer_config(s, self.group),
                "on_commit": self._on_commit,
                "statistics.interval.ms": _STATISTICS_INTERVAL_MS,
                "stats_cb": self.progress.statistics,
            }
        )
        self._consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        heap.prepare()
        log.info("consumer.started", topic=self.topic, group=self.group)
        try:
            while not stop.is_set():
                self._poll_once()
            self._stopping_since = time.monotonic()
            self._sync_commits = True
            self._finish_pending()
            self._finish(self._batcher.flush())
        except BatchAbandoned as exc:
            log.warning("consumer.batch_abandoned", topic=self.topic, reason=str(exc))
        finally:
            self._close_consumer()
            self._producer.flush(_FLUSH_TIMEOUT_S)
            # librdkafka's handles are destroyed with their Python objects: now, not whenever
            # this consumer object goes (a broker stopped meanwhile would fill stderr)
            self._consumer = self._producer = None
            self.processor.close()
            gc.unfreeze()  # a process that runs consumers again (tests) frees cycles meanwhile
            log.info("consumer.stopped", topic=self.topic, **self.progress.totals)

    def _close_consumer(self) -> None:
        """Leave the group. Whatever is still unfinished here (after a stop, nothing) follows a
        batch that failed: it is the next owner's. Closing fires the revoke callback, which must
        not finish and commit it past that batch."""
        assert self._consumer is not None
        self._pending = None
        self._batcher.flush()
        self._held = []
        self._consumer.close()

    def _poll_once(self) -> None:
        assert self._consumer is not None
        room = max(1, self._batcher.max_items - len(self._batcher))
        # consume() returns only when it has `room` messages or the timeout passed: first take
        # what is fetched already (after a long batch, the next one may be due at once), and
        # with a batch pending, wait for nothing (it is finished now unless the next is ready)
        fetched = self._consumer.consume(room, 0)
        if not fetched and not self._held and self._pending is None:
            if len(self._batcher):
                # an open batch (a batch wait is set) gathers until its deadline
                timeout = self._batcher.time_left()
                if timeout > 0:
                    fetched = self._consumer.consume(room, timeout)
            elif isinstance(self.processor, Owing) and self.processor.owes_work():
                # idle, with work owed from before this process (lists after a crash or a
                # generation switch): a batch of it without events, a share at a time
                self._run_batch([], [], time.monotonic(), self._revocations)
                return
            else:
                # idle: wake at the first message, not at the end of the wait, and take what
                # came with it (an idle consumer's first event waits for nothing)
                fetched = self._consumer.consume(1, _IDLE_POLL_S)
                if fetched and room > 1:
                    fetched += self._consumer.consume(room - 1, 0)
        messages, self._held = self._held + fetched, []
        self._add(messages)
        due = self._batcher.due()
        if due:
            self._close(due)
        if len(fetched) < room:
            # nothing more is waiting: no full batch to start on before finishing this one
            self._start_next_then_finish()

    def _add(self, messages: list[Message]) -> None:
        """Put fetched messages in the open batch; a batch they fill is closed."""
        since = self._revocations
        for msg in messages:
            if not self._owns(msg, since):
                # fetched before its partition was revoked (just before, or during the finish
                # of a batch these messages closed): the new owner redoes it
                continue
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    if err.fatal():
                        raise KafkaException(err)
                    log.warning("consumer.consume_error", topic=self.topic, error=str(err))
                continue
            entry, tokens = self.processor.receive(msg)
            closed = self._batcher.add((entry, msg), tokens, _age_s(msg))
            if closed:
                self._close(closed)

    def _start_next_then_finish(self) -> None:
        """Finish the pending batch; but first, once the work ``prepare`` started for it (the
        model's) is done, close the batch gathered behind it, even before its deadline, and
        prepare that: its model work then runs while the pending batch is written and
        published, and the one after gathers meanwhile. Under load, batches are as large as
        the model's pace makes them; alone, a batch still waits for its deadline."""
        pending = self._pending
        if pending is None:
            return
        processor = self.processor
        if isinstance(processor, Preparing) and processor.wait_prepared(
            pending[1], _PREPARED_WAIT_S
        ):
            assert self._consumer is not None
            room = max(1, self._batcher.max_items - len(self._batcher))
            self._add(self._consumer.consume(room, 0))  # what arrived during the wait
            if self._pending is not pending:
                # a batch they filled was closed (and the pending one finished), or a revoke
                # finished both: what is pending now is started on, and finished next poll
                return
            if len(self._batcher):
                self._close(self._batcher.flush())
                return
        self._finish_pending()

    def _close(self, batch: list[tuple[E, Message]]) -> None:
        """Let the processor start on a closed batch, then finish the one before it: when
        messages are waiting, batch N+1's model work runs beside batch N's publishing."""
        entries = [entry for entry, _ in batch]
        if isinstance(self.processor, Preparing):
            try:
                self.processor.prepare(entries)
            except Exception as exc:  # a head start only: process() does the work and reports
                log.warning("consumer.prepare_failed", topic=self.topic, error=str(exc)[:300])
        # pending while the one before is finished: a revoke meanwhile drops from it too
        previous, self._pending = self._pending, (batch, entries)
        if previous is not None:
            self._finish(*previous)

    def _finish_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._finish(*pending)

    def _finish(self, batch: list[tuple[E, Message]], entries: list[E] | None = None) -> None:
        """Process a closed batch, publish its outputs, confirm them, commit its offsets.
        ``entries``: the batch's entries as handed to ``prepare``, if it was.

        Store and broker failures are retried with doubling backoff, the partitions paused
        meanwhile (so nothing more is fetched and buffered); nothing is committed until the
        whole batch went through.
        """
        if self._finishing:
            raise RuntimeError("a batch was finished inside another one's finish")
        since = self._revocations
        batch, entries = self._still_owned(batch, entries, since)
        if not batch:
            return
        started = time.monotonic()
        self._finishing = True
        self._in_flight = [msg for _, msg in batch]
        try:
            self._run_batch(batch, entries, started, since)
        finally:
            self._finishing = False
            self._in_flight = []

    def _still_owned(
        self, batch: list[tuple[E, Message]], entries: list[E] | None, since: int
    ) -> tuple[list[tuple[E, Message]], list[E]]:
        """The batch and its entries without the events of partitions revoked after
        revocation ``since`` (when they were known to be ours): their new owner redoes them
        from the last commit, and a write from here could land after that owner's newer ones."""
        kept = [(e, m) for e, m in batch if self._owns(m, since)]
        if len(kept) < len(batch):
            dropped = len(batch) - len(kept)
            log.info("consumer.revoked_events_dropped", topic=self.topic, events=dropped)
            batch, entries = kept, None
            self._in_flight = [msg for _, msg in batch]
        if entries is None:
            entries = [entry for entry, _ in batch]
        return batch, entries

    def _owns(self, msg: Message, since: int) -> bool:
        """Whether ``msg``'s partition is ours and was not revoked after revocation ``since``
        (a message read then)."""
        tp = (msg.topic(), msg.partition())
        return tp in self._owned and self._revoked_at.get(tp, 0) <= since

    def _run_batch(
        self, batch: list[tuple[E, Message]], entries: list[E], started: float, since: int
    ) -> None:
        attempt = 0
        eventless = not batch  # owed work (Owing): retried like any batch
        while True:
            try:
                with self._batch_lock:
                    t0 = time.perf_counter()
                    result = self.processor.process(entries)
                    t1 = time.perf_counter()
                    if self.superseded is not None and (why := self.superseded()):
                        raise BatchAbandoned(why)
                    self._publish(result)
                    t2 = time.perf_counter()
                    self.processor.confirm(result)
                    t3 = time.perf_counter()
                break
            except RETRIABLE as exc:
                attempt += 1
                self.progress.failed(store=not isinstance(exc, KafkaException | DeliveryFailed))
                self._wait_before_retry(exc, attempt, started)
            # ownership is checked before every attempt: a rebalance is served inside the wait
            batch, entries = self._still_owned(batch, entries, since)
            if not batch and not eventless:
                self._resume()
                return
        self._resume()
        self._commit([msg for _, msg in batch], since)
        t4 = time.perf_counter()
        log.debug(
            "consumer.batch_timing",
            topic=self.topic,
            events=len(batch),
            outputs=len(result.outputs),
            process_ms=round((t1 - t0) * 1000, 1),
            publish_ms=round((t2 - t1) * 1000, 1),
            confirm_ms=round((t3 - t2) * 1000, 1),
            commit_ms=round((t4 - t3) * 1000, 1),
        )
        stages = dict(zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True))
        now = time.monotonic()
        self.progress.finished(
            len(batch),
            result.outputs,
            result.counts,
            {**result.seconds, **stages},
            now - started,
            now,
        )

    def _wait_before_retry(self, exc: Exception, attempt: int, started: float) -> None:
        s = self.settings
        now = time.monotonic()
        if self._stopping_since is not None and now - self._stopping_since > s.shutdown_timeout_s:
            raise BatchAbandoned(f"still failing at shutdown: {exc}") from exc
        if now - started > s.retry_budget_s:
            raise exc
        delay = min(s.retry_max_backoff_ms, s.retry_backoff_ms * 2 ** (attempt - 1)) / 1000
        log.warning(
            "consumer.batch_retry",
            topic=self.topic,
            attempt=attempt,
            delay_ms=round(delay * 1000),
            error=str(exc)[:300],
        )
        self._pause()
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            if self._stop is not None and self._stop.is_set() and self._stopping_since is None:
                self._stopping_since = time.monotonic()
            # keep the group membership alive; paused partitions deliver nothing new, and
            # anything already fetched is kept for later, not dropped. (A negative timeout
            # would block forever.)
            assert self._consumer is not None
            self._held.extend(self._consumer.consume(100, min(0.2, left)))

    @property
    def joined(self) -> bool:
        """True once the group has assigned this member its partitions (possibly none) at
        least once: it has joined its group."""
        return self._joined

    def oldest_unfinished_at(self) -> float | None:
        """The publish time (Unix seconds) of the oldest message read and not yet committed,
        by its timestamp; None when there is none. Called from other threads (metrics): it
        reads copies of what the loop holds."""
        pending = self._pending
        read = [*(pending[0] if pending is not None else []), *self._batcher.events()]
        messages = [*self._in_flight, *(msg for _, msg in read), *self._held]
        stamps = [m.timestamp() for m in messages]
        known = [ms for kind, ms in stamps if kind != TIMESTAMP_NOT_AVAILABLE]
        return min(known) / 1000 if known else None

    @property
    def buffered(self) -> int:
        """Messages read and not yet being processed: the open batch, the batch closed ahead,
        and what was fetched while a failing batch was retried (partitions paused)."""
        pending = len(self._pending[0]) if self._pending is not None else 0
        return len(self._batcher) + len(self._held) + pending

    def _pause(self) -> None:
        assert self._consumer is not None
        if not self.paused:
            self._consumer.pause(self._consumer.assignment())
            self.paused = True
            log.warning("consumer.paused", topic=self.topic)

    def _resume(self) -> None:
        if self.paused and self._consumer is not None:
            self._consumer.resume(self._consumer.assignment())
            self.paused = False
            log.info("consumer.resumed", topic=self.topic)

    def _publish(self, result: BatchResult[C]) -> None:
        assert self._producer is not None
        publish(self._producer, result.outputs, self._max_record_bytes)

    def _commit(self, messages: list[Message], since: int) -> None:
        """Commit, per partition, the offset after the last message of the batch.

        Without waiting for the coordinator's answer (one that fails is logged and overtaken by
        the next; one retried after a later one only makes work be redone), except while
        partitions are revoked and when stopping: those must land while this member still owns
        the partitions."""
        assert self._consumer is not None
        positions: dict[tuple[str, int], int] = {}
        for msg in messages:
            tp = (msg.topic() or "", msg.partition() or 0)
            if self._owns(msg, since):  # one revoked during the batch's retries is not ours
                positions[tp] = max(positions.get(tp, -1), (msg.offset() or 0) + 1)
        if not positions:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        try:
            if self._sync_commits:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            # e.g. the partitions were revoked meanwhile: the next owner redoes that work,
            # which is safe because every effect is idempotent.
            log.warning("consumer.commit_failed", error=str(exc), partitions=len(offsets))

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        failed = [p for p in partitions if p.error is not None]
        if err is not None or failed:
            # the work is done and durable: at worst the next owner (or a restart) redoes it
            log.warning(
                "consumer.commit_failed",
                error=str(err or failed[0].error),
                partitions=len(failed) or len(partitions),
            )

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._owned.update((p.topic, p.partition) for p in partitions)
        self._joined = True
        log.info("consumer.assigned", partitions=[(p.topic, p.partition) for p in partitions])
        if not partitions:
            return
        # librdkafka keeps a partition's pause through a revoke and a later assignment, and a
        # pause takes effect only once the partition is assigned: take the partitions here,
        # then pause them while a failing batch is retried (or they would be fetched at full
        # rate meanwhile), else resume them (one paused during a retry, revoked, and given back
        # after it would never be fetched again).
        if self.settings.kafka_assignment_strategy == "cooperative-sticky":
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
        if self.paused:
            consumer.pause(partitions)
        else:
            consumer.resume(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Finish what was read so far (it may include the revoked partitions) and commit it
        # while this member still owns them; bounded by two batches (the one closed ahead and
        # the open one), older first.
        log.info("consumer.revoked", partitions=[(p.topic, p.partition) for p in partitions])
        if self._finishing:
            # fired by a consume() inside a failing batch's retries: finishing (and committing)
            # later batches now would commit past that batch and the one waiting behind it.
            # Only let go: the new owner starts from the last commit.
            self._let_go(partitions)
            return
        self._sync_commits = True
        try:
            self._finish_pending()
            self._finish(self._batcher.flush())
        finally:
            self._sync_commits = self._stopping_since is not None
        self._let_go(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Ownership is already gone: nothing can be committed; the new owner redoes the work.
        log.warning("consumer.lost", partitions=[(p.topic, p.partition) for p in partitions])
        self._let_go(partitions)

    def _let_go(self, partitions: list[TopicPartition]) -> None:
        """These partitions are no longer ours: drop every message of them read and not
        committed (the batch being finished drops its own before its next attempt). None of it
        may be processed here, even if they come back: they are then fetched again from the
        last commit."""
        gone = {(p.topic, p.partition) for p in partitions}
        self._owned.difference_update(gone)
        self._revocations += 1
        self._revoked_at.update(dict.fromkeys(gone, self._revocations))

        def of_gone(msg: Message) -> bool:
            return (msg.topic(), msg.partition()) in gone

        if self._pending is not None:
            kept = [(e, m) for e, m in self._pending[0] if not of_gone(m)]
            if len(kept) < len(self._pending[0]):
                self._pending = (kept, [e for e, _ in kept]) if kept else None
        self._batcher.discard(lambda entry: of_gone(entry[1]))
        self._held = [msg for msg in self._held if not of_gone(msg)]


def _age_s(msg: Message) -> float:
    """Seconds since the message was published, by its timestamp; 0 when it has none."""
    kind, millis = msg.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE:
        return 0.0
    return time.time() - millis / 1000
