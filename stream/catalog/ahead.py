"""Encoding a batch's texts ahead, while the batch before it is still written and published.

When the next messages are already fetched, the consumer loop closes batch N+1 before it
finishes batch N (:class:`stream.loop.consumer.BatchConsumer`) and lets the processor start on it.
A worker thread then runs the model on N+1's texts while the loop thread merges, publishes and
records N's lists: on two cores the model alone leaves a core idle while Python does the
bookkeeping, and the bookkeeping alone leaves the model idle.

It is only a head start. The texts are chosen by planning N+1 against the store as it is
before N is written; :meth:`stream.catalog.processor.CatalogProcessor.process` plans N+1 again
when its turn comes, takes from here the vectors of the texts it needs, and encodes whatever was
not started or failed here (and reports those failures as it always does). A vector depends
only on its text (up to int8 rounding, which also varies with batch mates), so a vector made
ahead is as good as one made on time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor, wait

import numpy as np
import numpy.typing as npt
import structlog

from encoders import Encoder

log = structlog.get_logger(__name__)

Matrix = npt.NDArray[np.float32]


class EncodeAhead:
    """One worker thread that encodes texts for batches still to be processed, by batch key.

    ``lock`` serialises the model's runs: the overlap wanted is the model beside Python's
    bookkeeping, not two model runs at once (twice the activation memory on a GPU). The
    processor holds it for its own encode calls too."""

    def __init__(self, encoder: Encoder, keep: int = 4) -> None:
        self._encoder = encoder
        self._keep = keep
        self.lock = threading.Lock()
        self._started: OrderedDict[int, tuple[list[str], Future[Matrix]]] = OrderedDict()
        self._pool: ThreadPoolExecutor | None = None

    def start(self, key: int, texts: list[str]) -> None:
        """Start encoding ``texts`` for the batch ``key`` (queued behind earlier batches)."""
        if not texts:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="encode-ahead")
        self._started[key] = (texts, self._pool.submit(self._encode, texts))
        while len(self._started) > self._keep:  # batches never processed (partitions lost)
            _, (_, dropped) = self._started.popitem(last=False)
            dropped.cancel()  # not started yet: do not let it delay the batches behind it

    def _encode(self, texts: list[str]) -> Matrix:
        with self.lock:
            return self._encoder.encode(texts)

    def wait(self, key: int, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) for what was started for batch ``key``; True if
        something was and it is done (failed included)."""
        started = self._started.get(key)
        if started is None:
            return False
        done, _ = wait([started[1]], timeout_s)
        return bool(done)

    def take(self, key: int) -> dict[str, Matrix]:
        """The vectors started for batch ``key``, by text, once they are ready; nothing when
        none were started or the encoding failed."""
        started = self._started.pop(key, None)
        if started is None:
            return {}
        texts, future = started
        try:
            matrix = future.result()
        except Exception as exc:  # encoded again on time, where a failure is handled
            log.info("catalog.encode_ahead_failed", texts=len(texts), error=str(exc)[:300])
            return {}
        return dict(zip(texts, matrix, strict=True))

    def close(self) -> None:
        for _, future in self._started.values():
            future.cancel()
        self._started.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
