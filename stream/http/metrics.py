"""Prometheus metrics: each consumer's progress, read at scrape time (the consumer's own loop
only adds to its :class:`stream.loop.Progress`), and the HTTP API's request timings. One
registry per API, not the library's global one.

Per consumer (label ``consumer``: its input topic):

- ``recstream_consumer_events_total``, ``_batches_total``, ``_outputs_total``,
  ``_dead_letters_total``; ``recstream_consumer_processed_total{kind}``: what the consumer's
  batches counted (encoded, deleted, lists, recommendations, activities, ...);
- ``recstream_consumer_joined``, ``recstream_consumer_paused`` (0 or 1; paused: retrying a
  failing batch), ``recstream_consumer_buffered_messages``;
- ``recstream_batch_stage_seconds{stage}`` (process, publish, confirm, commit) and
  ``recstream_batch_seconds`` (a batch from the start of its finish to its commit, retries
  included): histograms.

``recstream_http_request_seconds{route, method, status}``: a histogram of the API's requests.
"""

from __future__ import annotations

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
        for c in self.consumers:
            p = c.progress
            label = [c.topic]
            for name, family in counters.items():
                family.add_metric(label, getattr(p, name))
            for kind, n in sorted(dict(p.totals).items()):
                processed.add_metric([*label, kind], n)
            joined.add_metric(label, float(c.joined))
            paused.add_metric(label, float(c.paused))
            buffered.add_metric(label, c.buffered)
            for stage, durations in p.stage_seconds.items():
                stages.add_metric([*label, stage], *_buckets(durations))
            batches.add_metric(label, *_buckets(p.batch_seconds))
        yield from counters.values()
        yield from (processed, joined, paused, buffered, stages, batches)


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
