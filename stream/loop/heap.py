"""A consumer process's heap: the C allocator keeps freed memory, and the garbage collector's
full collections walk only what was made since the consumer started."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

import structlog

log = structlog.get_logger(__name__)

GC_YOUNG = 50_000
"""Allocations between collections of the youngest generation (Python's default: 700)."""
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def keep_freed_memory() -> None:
    """Let the C allocator keep freed memory for reuse rather than hand blocks of more than
    128 KB back to the system: batches allocate and free arrays of tens of MB, and the pages of
    each fresh mapping cost more to fault in than the arithmetic done on them (bench/README.md).
    The process keeps its peak size instead of shrinking between batches. glibc only; a no-op
    elsewhere."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 1 << 30)
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)


def prepare() -> None:
    """What a consumer process sets up when a consumer starts: :func:`keep_freed_memory`, then
    :func:`settle`."""
    keep_freed_memory()
    settle()


def settle() -> None:
    """Collect, then move every object still alive (modules, the model, whatever the process
    built before consuming) out of the garbage collector's reach: a full collection then walks
    only what was made since. A batch makes tens of thousands of short-lived objects, so full
    collections come often, and each walked every object the process held, however old
    (bench/README.md). Once frozen, an object is still freed when nothing refers to it; only a
    reference cycle among frozen objects would stay, until the consumer stops
    (:meth:`stream.loop.consumer.BatchConsumer.run` unfreezes then). The youngest generation
    is collected every :data:`GC_YOUNG` allocations instead of 700: a batch's objects mostly
    die young anyway, and collecting a few hundred times a batch cost the behaviour consumer a
    tenth of its time (bench/README.md)."""
    gc.collect()
    gc.freeze()
    young, older, oldest = gc.get_threshold()
    gc.set_threshold(max(GC_YOUNG, young), older, oldest)
    log.debug("consumer.heap_frozen", objects=gc.get_freeze_count())
