"""Prometheus metrics: each consumer's progress, read at scrape time (the consumer's own loop
only adds to its :class:`stream.loop.Progress`), and the HTTP API's request timings. One
registry per API, not the library's global one.

Per consumer (label ``consumer``: its input topic):

- ``recstream_consumer_events_total``, ``_batches_total``, ``_outputs_total``,
  ``_dead_letters_total``, ``_retries_total``, ``_store_errors_total``;
  ``recstream_consumer_dead_letters_by_reason_total{reason}``;
  ``recstream_consumer_processed_total{kind}``: what the consumer's batches counted (encoded,
  deleted, lists, recommendations, activities, ...); ``recstream_encoder_texts_total`` and
  ``recstream_encoder_tokens_total`` (consumers that encode);
- ``recstream_consumer_lag_messages{topic, partition}`` (from librdkafka's last statistics
  report), ``recstream_consumer_oldest_unpublished_seconds`` (freshness: the age of the oldest
  message read and not committed, 0 when none);
- ``recstream_consumer_joined``, ``recstream_consumer_paused`` (0 or 1; paused: retrying a
  failing batch), ``recstream_consumer_buffered_messages``;
- ``recstream_batch_stage_seconds{stage}`` (the loop's process, publish, confirm, commit; the
  processor's parts of process: encode, store, lists for the catalog) and
  ``recstream_batch_seconds`` (a batch from the start of its finish to its commit, retries
  included): histograms.

``recstream_http_request_seconds{route, method, status}``: a histogram of the API's requests.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from stream.http.readiness import Watched
from stream.loop.durations import Durations

_LABEL = ["consumer"]
_COUNTERS = {
    "events": "messages read and finished (committed)",
    "batches": "batches finished (committed)",
    "outputs": "messages published (lists, recommendations, activities, dead letters)",
    "dead_letters": "messages sent to the dead-letter topic",
    "retries": "failed attempts at a batch that were retried",
    "store_errors": "failed attempts at a batch that the store failed",
}
_ENCODER = {
    "texts": "texts the consumer's batches encoded",
    "tokens": "tokens of the texts the consumer's batches encoded",
}


class ConsumerCollector(Collector):
    """The consumers' progress as Prometheus metrics, read when scraped."""

    def __init__(self, consumers: Sequence[Watched]) -> None:
        self.consumers = list(consumers)

    def collect(self) -> Iterable[Metric]:
        counters = {
            name: CounterMetricFamily(f"recstream_consumer_{name}", doc, labels=_LABEL)
            for name, doc in _COUNTERS.items()
        }
        processed = CounterMetricFamily(
            "recstream_consumer_processed",
            "what the consumer's batches counted, by kind",
            labels=[*_LABEL, "kind"],
        )
        joined = GaugeMetricFamily(
            "recstream_consumer_joined", "1 once the consumer has joined its group", labels=_LABEL
        )
        paused = GaugeMetricFamily(
            "recstream_consumer_paused",
            "1 while the consumer retries a failing batch (partitions paused)",
            labels=_LABEL,
        )
        buffered = GaugeMetricFamily(
            "recstream_consumer_buffered_messages",
            "messages read and not yet being processed",
            labels=_LABEL,
        )
        reasons = CounterMetricFamily(
            "recstream_consumer_dead_letters_by_reason",
            "messages sent to the dead-letter topic, by reason code",
            labels=[*_LABEL, "reason"],
        )
        encoder = {
            name: CounterMetricFamily(f"recstream_encoder_{name}", doc, labels=_LABEL)
            for name, doc in _ENCODER.items()
        }
        lag = GaugeMetricFamily(
            "recstream_consumer_lag_messages",
            "messages between the group's committed offset and the end of each assigned "
            "partition (librdkafka's last statistics report)",
            labels=[*_LABEL, "topic", "partition"],
        )
        oldest = GaugeMetricFamily(
            "recstream_consumer_oldest_unpublished_seconds",
            "age of the oldest message read and not yet committed (0 when none): how stale "
            "the outputs are at worst, for what was read",
            labels=_LABEL,
        )
        stages = HistogramMetricFamily(
            "recstream_batch_stage_seconds",
            "duration of each stage of a finished batch (the attempt that went through)",
            labels=[*_LABEL, "stage"],
        )
        batches = HistogramMetricFamily(
            "recstream_batch_seconds",
            "a batch from the start of its finish to its commit, retries included",
            labels=_LABEL,
        )
        now = time.time()
        for c in self.consumers:
            p = c.progress
            label = [c.topic]
            for name, family in counters.items():
                family.add_metric(label, getattr(p, name))
            for reason, n in sorted(p.dead_letter_reasons.items()):
                reasons.add_metric([*label, reason], n)
            totals = p.totals
            for kind, n in sorted(totals.items()):
                processed.add_metric([*label, kind], n)
            for name, family in encoder.items():
                if f"encoder_{name}" in totals:
                    family.add_metric(label, totals[f"encoder_{name}"])
            for (topic, partition), n in sorted(p.lag.items()):
                lag.add_metric([*label, topic, str(partition)], n)
            since = c.oldest_unfinished_at()
            oldest.add_metric(label, 0.0 if since is None else max(0.0, now - since))
            joined.add_metric(label, float(c.joined))
            paused.add_metric(label, float(c.paused))
            buffered.add_metric(label, c.buffered)
            for stage, durations in sorted(p.stage_seconds.items()):
                stages.add_metric([*label, stage], *_buckets(durations))
            batches.add_metric(label, *_buckets(p.batch_seconds))
        yield from counters.values()
        yield from (reasons, processed, *encoder.values(), lag, oldest)
        yield from (joined, paused, buffered, stages, batches)


def _buckets(d: Durations) -> tuple[list[tuple[str, float]], float]:
    return [("+Inf" if b == float("inf") else repr(b), n) for b, n in d.cumulative()], d.total_s


def metrics_registry(consumers: Sequence[Watched]) -> tuple[CollectorRegistry, Histogram]:
    """A registry with the consumers' metrics, and the request histogram it also holds."""
    registry = CollectorRegistry()
    registry.register(ConsumerCollector(consumers))
    requests = Histogram(
        "recstream_http_request_seconds",
        "HTTP API requests, by route template, method and status",
        ["route", "method", "status"],
        registry=registry,
    )
    return registry, requests
