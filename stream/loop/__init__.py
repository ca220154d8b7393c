"""The consumer framework every recstream consumer runs on: a micro-batcher that says when a
batch closes (``batching``), the processor protocol (``protocol``) and the loop that polls,
processes, publishes and commits (``consumer``)."""

from __future__ import annotations

from stream.loop.consumer import BatchAbandoned, BatchConsumer, DeliveryFailed
from stream.loop.progress import Progress
from stream.loop.protocol import BatchResult, Output, Preparing, Processor

__all__ = [
    "BatchAbandoned",
    "BatchConsumer",
    "BatchResult",
    "DeliveryFailed",
    "Output",
    "Preparing",
    "Processor",
    "Progress",
]
