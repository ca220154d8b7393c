"""What a consumer process sets up when a consumer starts: its heap (:mod:`stream.loop.heap`)
and, for the consumers that ask, how long a thread may keep the interpreter lock while another
waits for it.

A process runs several threads: the consumers' loops (one per consumer of ``recstream run``),
the catalog's encoder and the clusters' worker, the HTTP server. Calls into the embedded store
(Qdrant Edge) let go of the interpreter lock many times while they convert points and payloads;
each time, a thread running Python meanwhile takes the lock and keeps it for up to the switch
interval (5 ms by default) before the store's caller gets it back. Beside a busy thread, an
upsert of 256 item-stats points took 630 ms instead of 9 (``recstream bench threads``,
bench/README.md). The behaviour and item-stats consumers, two threads of Python and store calls
side by side, ask for :data:`SWITCH_INTERVAL_S`: they drained 6% faster with it. The catalog
consumer does not: its encoder's thread, which bounds it under load, lost more to the extra
turns than its store writes gained (bench/README.md).
"""

from __future__ import annotations

import sys

from stream.loop import heap

SWITCH_INTERVAL_S = 0.001
"""The longest a thread keeps the interpreter lock while another waits, for the consumers that
ask (Python's default: 0.005)."""


def prepare(switch_interval_s: float | None = None) -> None:
    """Set up this process for consuming: keep freed memory, settle the heap
    (:mod:`stream.loop.heap`) and, given ``switch_interval_s``, shorten the interpreter's switch
    interval to it (never lengthen it: the process may run a consumer that asked for less)."""
    heap.keep_freed_memory()
    heap.settle()
    if switch_interval_s is not None:
        sys.setswitchinterval(min(sys.getswitchinterval(), switch_interval_s))
