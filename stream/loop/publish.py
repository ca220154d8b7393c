"""Publishing a batch's outputs and waiting for the broker's acknowledgement of each.

A failure that may pass (the broker unreachable, a delivery timed out) is :class:`DeliveryFailed`,
retried with the batch. A record refused for good (larger than ``message.max.bytes``, not
allowed) is :class:`OutputRejected`: retrying it for the whole retry budget would only delay the
same exit. Dead letters are cut to fit the producer's limit first (:func:`fit_dead_letter`), so
bad input cannot make the consumer stop on it again after every restart.
"""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from stream.errors import Transient
from stream.kafka.fit import fit_dead_letter, is_dead_letter
from stream.loop.protocol import Output

_FLUSH_TIMEOUT_S = 30.0

REFUSED_FOR_GOOD = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_REQUIRED_ACKS,
        KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError._INVALID_ARG,
    }
)
"""Errors of a produced record that the same record meets again on every retry."""


class DeliveryFailed(Transient):
    """Outputs were not acknowledged by the broker; the batch's offsets stay uncommitted."""


class OutputRejected(RuntimeError):
    """The producer or the broker refuses an output for good: the consumer stops with the
    reason (what to change), nothing of the batch committed."""


def refused_for_good(err: KafkaError) -> bool:
    """Whether retrying the record cannot help (a fatal producer error included)."""
    return err.fatal() or err.code() in REFUSED_FOR_GOOD


def publish(producer: Producer, outputs: Sequence[Output], max_bytes: int) -> None:
    """Produce every output, then wait until each is acknowledged. ``max_bytes``: the
    producer's ``message.max.bytes``; dead letters larger than that are cut to fit."""
    failed: list[tuple[KafkaError, str]] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            failed.append((err, msg.topic() or ""))

    for out in outputs:
        key, value, headers = out.key, out.value, out.headers
        if headers is not None and is_dead_letter(headers):
            key, value, headers = fit_dead_letter(key, value, headers, max_bytes)
        while True:
            try:
                producer.produce(
                    out.topic, key=key, value=value, headers=headers, on_delivery=on_delivery
                )
                break
            except BufferError:
                # local queue full: let deliveries drain, then retry this record
                producer.poll(0.1)
            except KafkaException as exc:
                err = exc.args[0]
                if isinstance(err, KafkaError) and refused_for_good(err):
                    raise OutputRejected(_rejected(err, out.topic, key, value)) from exc
                raise
    remaining = producer.flush(_FLUSH_TIMEOUT_S)
    for err, topic in failed:
        if refused_for_good(err):
            raise OutputRejected(f"the broker refused a record for {topic}: {_reason(err)}")
    if remaining or failed:
        raise DeliveryFailed(
            f"{remaining} outputs undelivered, {len(failed)} failed: "
            + "; ".join(f"{topic}: {err}" for err, topic in failed[:3])
        )


def _rejected(err: KafkaError, topic: str, key: bytes | None, value: bytes | None) -> str:
    size = len(key or b"") + len(value or b"")
    return f"the producer refused a record of {size} bytes for {topic}: {_reason(err)}"


def _reason(err: KafkaError) -> str:
    if err.code() in (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE):
        return (
            f"{err.str()} (outputs are limited to 4 x RECSTREAM_MAX_MESSAGE_BYTES, at least "
            "1 MiB, and the broker's and topic's max.message.bytes)"
        )
    return err.str()
