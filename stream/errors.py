"""Errors every package may raise and the consumer loop knows, without importing one another."""

from __future__ import annotations


class Transient(Exception):
    """A failure of something outside the process (the store, the broker) that may pass: the
    consumer loop retries the batch with backoff instead of stopping."""


class Refused(Exception):
    """A start-up check that waiting cannot pass (another process holds the store, the store's
    vectors come from another model): the command prints the message, which says what to
    change, on one line and exits non-zero."""


class Unreachable(Refused):
    """At start-up, a server the settings name (the Kafka broker, a Qdrant server) did not
    answer in time. ``setting`` is the variable to check, named in the message too."""

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(f"{message}: check {setting}")
        self.setting = setting
