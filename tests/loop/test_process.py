"""What a consumer process sets up when a consumer starts (``stream.loop.process``): the
interpreter's switch interval, shortened for the behaviour consumers so that their store calls
beside a busy thread do not wait 5 ms each time they let go of the interpreter lock."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator

import pytest
from kit import committed_count, publish, view_message, wait_for

from stream.behaviour.processor import BehaviourConsumer, BehaviourProcessor
from stream.loop import process
from stream.settings import Settings
from stream.store.edge import EdgeStore

PYTHON_DEFAULT_S = 0.005


@pytest.fixture
def python_default_interval() -> Iterator[None]:
    """The test starts at Python's default interval and gives back what it found."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(PYTHON_DEFAULT_S)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@pytest.mark.usefixtures("python_default_interval")
def test_prepare_shortens_the_switch_interval_when_asked_and_never_lengthens_it() -> None:
    process.prepare()  # a consumer that asks for none (the catalog's)
    assert sys.getswitchinterval() == pytest.approx(PYTHON_DEFAULT_S)
    process.prepare(process.SWITCH_INTERVAL_S)
    assert sys.getswitchinterval() == pytest.approx(process.SWITCH_INTERVAL_S)
    sys.setswitchinterval(process.SWITCH_INTERVAL_S / 4)  # set shorter by whoever runs it
    process.prepare(process.SWITCH_INTERVAL_S)
    process.prepare()
    assert sys.getswitchinterval() == pytest.approx(process.SWITCH_INTERVAL_S / 4)


@pytest.mark.integration
@pytest.mark.usefixtures("python_default_interval")
def test_a_running_behaviour_consumer_has_shortened_the_switch_interval(
    make_settings: Callable[..., Settings],
) -> None:
    """The behaviour consumer on the real broker: once it has committed its first events, its
    process switches threads at least every ``SWITCH_INTERVAL_S``."""
    settings = make_settings()
    topic = settings.topic_user_events
    publish(settings, topic, [view_message(f"u-{n}", n) for n in range(1, 4)])
    store = EdgeStore(settings.qdrant_path)
    stop = threading.Event()
    try:
        consumer = BehaviourConsumer(settings, BehaviourProcessor(settings, store, 16))
        runner = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
        runner.start()
        group = settings.behaviour_group()
        wait_for(lambda: committed_count(settings, group, topic) == 3, what="the commits")
        assert sys.getswitchinterval() <= process.SWITCH_INTERVAL_S + 1e-9
    finally:
        stop.set()
        runner.join(60)
        store.close()
