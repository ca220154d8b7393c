"""Reading a /metrics answer the way Prometheus does (its own parser)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]


def samples(text: str, name: str) -> dict[Labels, float]:
    """The samples called ``name`` in a Prometheus text, by their sorted labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def by(**labels: str) -> Labels:
    """The sorted labels ``samples`` keys a sample by."""
    return tuple(sorted(labels.items()))


_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count", ""),
}


def sample_names(text: str) -> set[str]:
    """Every series name a query could name: each family's samples, also when it has none yet
    (a counter's ``_total``, a histogram's ``_bucket``, ``_sum`` and ``_count``)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
        names.update(s.name for s in family.samples)
    return names
