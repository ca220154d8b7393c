"""Errors every package may raise and the consumer loop knows, without importing one another."""

from __future__ import annotations


class Transient(Exception):
    """A failure of something outside the process (the store, the broker) that may pass: the
    consumer loop retries the batch with backoff instead of stopping."""
