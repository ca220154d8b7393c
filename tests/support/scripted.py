"""The consumer loop driven without librdkafka: a scripted consumer and producer stand in for
it, so a test steps the loop poll by poll (the loop's own policy, not Kafka's)."""

from __future__ import annotations

from typing import Any

from stream.kafka.dlq import LocalMessage
from stream.loop import BatchConsumer, Processor
from stream.settings import Settings

TOPIC = "catalog.items"


class Message(LocalMessage):
    def error(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (0, 0)  # TIMESTAMP_NOT_AVAILABLE: no age, batches close on size


class ScriptedConsumer:
    """Hands out queued messages; ``on_consume`` runs inside every consume() call (where
    librdkafka serves rebalance callbacks)."""

    def __init__(self, messages: list[Message]) -> None:
        self.queue = list(messages)
        self.commits: list[list[tuple[str, int, int]]] = []
        self.waited: list[bool] = []
        """Per commit: whether the loop waited for its answer (asynchronous=False)."""
        self.on_consume: Any = None
        self.on_close: Any = None
        self.calls: list[tuple[str, list[tuple[str, int]]]] = []
        """assign, pause and resume calls, in order, with their partitions."""

    def consume(self, num: int, timeout: float) -> list[Message]:
        if self.on_consume is not None:
            self.on_consume()
        taken, self.queue = self.queue[:num], self.queue[num:]
        return taken

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        self.commits.append([(o.topic, o.partition, o.offset) for o in offsets])
        self.waited.append(not asynchronous)

    def close(self) -> None:
        if self.on_close is not None:
            self.on_close()  # librdkafka revokes the partitions when a member leaves

    def _record(self, call: str, partitions: list[Any]) -> None:
        self.calls.append((call, [(p.topic, p.partition) for p in partitions]))

    def assign(self, partitions: list[Any]) -> None:
        self._record("assign", partitions)

    def incremental_assign(self, partitions: list[Any]) -> None:
        self._record("incremental_assign", partitions)

    def pause(self, partitions: list[Any]) -> None:
        self._record("pause", partitions)

    def resume(self, partitions: list[Any]) -> None:
        self._record("resume", partitions)

    def assignment(self) -> list[Any]:
        return []


class NullProducer:
    def produce(self, *args: Any, **kwargs: Any) -> None: ...

    def flush(self, timeout: float) -> int:
        return 0


def scripted_loop(
    processor: Processor[Any, Any], offsets: range
) -> tuple[BatchConsumer[Any, Any], ScriptedConsumer]:
    """A loop over ``TOPIC`` partition 0 holding messages at ``offsets``, batches of 3 closed on
    size (no age), retries 1 ms apart; it owns the partition."""
    s = Settings(batch_max_items=3, batch_max_wait_ms=10_000, retry_backoff_ms=1)
    consumer: BatchConsumer[Any, Any] = BatchConsumer(s, processor, TOPIC, "g")
    scripted = ScriptedConsumer([Message(o, b"k", b"v", TOPIC, 0) for o in offsets])
    consumer._consumer = scripted  # type: ignore[assignment]
    consumer._producer = NullProducer()  # type: ignore[assignment]
    consumer._owned = {(TOPIC, 0)}
    return consumer, scripted
