"""What a processor gives the consumer loop, and what the loop asks of it.

``E`` is the entry a processor makes of each message (an event, or a dead letter to publish);
``C`` is what it needs back, once its outputs are delivered, to record them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, runtime_checkable

from stream.kafka.dlq import Message

E = TypeVar("E")
C = TypeVar("C")


@dataclass(frozen=True)
class Output:
    """One record to publish."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]] | None = None


@dataclass
class BatchResult(Generic[C]):
    outputs: list[Output] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    confirm: C | None = None
    """What the processor needs, once the outputs are delivered, to record them."""
    seconds: dict[str, float] = field(default_factory=dict)
    """How long parts of ``process`` took, by stage name (``encode``, ``store``, ...): the
    metrics' stage histograms show them beside the loop's own stages."""


class Processor(Protocol[E, C]):
    """The domain side of a consumer: validate, process a batch, record delivered outputs."""

    def receive(self, msg: Message) -> tuple[E, int]:
        """An entry for the batch (an event or a dead letter) and its token count."""

    def process(self, batch: list[E]) -> BatchResult[C]:
        """Apply a closed batch (durably) and return the records to publish."""

    def confirm(self, result: BatchResult[C]) -> None:
        """Called after every output of ``result`` was acknowledged, before the commit."""

    def close(self) -> None:
        """The consumer stopped: release what the processor holds."""


@runtime_checkable
class Preparing(Protocol[E]):
    """A processor with work to start ahead (the catalog's model): the loop hands it each closed
    batch before it finishes the one before. Processors without these methods get none."""

    def prepare(self, batch: list[E]) -> None:
        """Start work on a closed batch in the background, if there is any to start, while the
        batch before it is finished. :meth:`Processor.process` usually follows on the same list
        object, but may get another list (part of it revoked meanwhile) or none (partitions
        lost), so this must have no effects; it is a head start only."""

    def wait_prepared(self, batch: list[E], timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) for the work ``prepare(batch)`` started; True if there
        was some and it is done."""


@runtime_checkable
class Owing(Protocol):
    """A processor that can start owing work no event asks for (the catalog's lists owed by a
    process that stopped before publishing them, or by a generation switched to): when no
    event is waiting, the loop runs batches without events until it owes none, rather than
    waiting for the next event (each batch, with events or not, takes a share of it)."""

    def owes_work(self) -> bool: ...
