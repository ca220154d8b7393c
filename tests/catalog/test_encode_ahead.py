"""EncodeAhead: texts encoded on a worker thread for a batch processed later, by batch key."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from encoders import EncoderError
from stream.catalog.ahead import EncodeAhead


class LengthEncoder:
    """Fake: a text's vector is (len, 1); a text containing "bad" is rejected."""

    name = "length-2"
    dim = 2
    device = "cpu"
    runtime = "torch"

    def __init__(self) -> None:
        self.threads: set[str] = set()
        self.release = threading.Event()
        self.release.set()

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.threads.add(threading.current_thread().name)
        self.release.wait(10)
        if any("bad" in t for t in texts):
            raise EncoderError("rejected")
        return np.asarray([[len(t), 1.0] for t in texts], dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t) for t in texts]


def test_vectors_come_back_by_text_for_their_batch_from_a_worker_thread() -> None:
    encoder = LengthEncoder()
    ahead = EncodeAhead(encoder)
    ahead.start(1, ["a", "bbb"])
    ahead.start(2, ["cc"])
    got = ahead.take(1)
    assert {t: v.tolist() for t, v in got.items()} == {"a": [1, 1], "bbb": [3, 1]}
    assert ahead.take(1) == {}  # taken once
    assert list(ahead.take(2)) == ["cc"]
    assert encoder.threads and all(n.startswith("encode-ahead") for n in encoder.threads)
    ahead.close()


def test_wait_says_whether_a_batch_s_encoding_was_started_and_is_done() -> None:
    encoder = LengthEncoder()
    encoder.release.clear()
    ahead = EncodeAhead(encoder)
    assert ahead.wait(1, 0.0) is False  # nothing started for it
    ahead.start(1, ["ab"])
    assert ahead.wait(1, 0.05) is False  # still running
    encoder.release.set()
    assert ahead.wait(1, 10.0) is True
    assert list(ahead.take(1)) == ["ab"]  # waiting does not take
    ahead.start(2, ["bad"])
    assert ahead.wait(2, 10.0) is True  # done, if failed: process() encodes and reports it
    ahead.close()


def test_take_waits_for_a_batch_still_being_encoded() -> None:
    encoder = LengthEncoder()
    encoder.release.clear()
    ahead = EncodeAhead(encoder)
    ahead.start(7, ["abcd"])
    threading.Timer(0.2, encoder.release.set).start()
    assert ahead.take(7)["abcd"].tolist() == [4, 1]
    ahead.close()


def test_a_failed_batch_or_an_unknown_one_gives_nothing() -> None:
    """The processor then encodes the texts itself, where a rejection becomes a dead letter."""
    ahead = EncodeAhead(LengthEncoder())
    ahead.start(1, ["fine", "bad text"])
    assert ahead.take(1) == {}
    assert ahead.take(99) == {}
    ahead.start(2, [])  # nothing to start
    assert ahead.take(2) == {}
    ahead.close()


@pytest.mark.parametrize("keep", [1, 3])
def test_batches_never_taken_are_forgotten_beyond_keep(keep: int) -> None:
    """A batch dropped by the loop (its partitions lost) does not hold vectors forever."""
    ahead = EncodeAhead(LengthEncoder(), keep=keep)
    for key in range(5):
        ahead.start(key, [f"t{key}"])
    assert [bool(ahead.take(key)) for key in range(5)] == [k >= 5 - keep for k in range(5)]
    ahead.close()
