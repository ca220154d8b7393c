"""The embedded store's directory belongs to one process at a time: a second process that
opens it gets a one-line error naming RECSTREAM_QDRANT_PATH and a non-zero exit code, and the
first one's data is untouched. Real processes: the lock must hold across them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stream.store import StoredPoint, StoreLocked
from stream.store.edge import EdgeStore

# Opens the store (the packaged model's dimension), writes a point, says so, and holds the
# store until its stdin closes.
_HOLDER = """
import sys
import numpy as np
from stream.store import StoredPoint
from stream.store.edge import EdgeStore
store = EdgeStore(sys.argv[1])
store.ensure_collection("items", 384)
store.upsert("items", [StoredPoint("sku-1", {"title": "held"}, np.ones(384, dtype=np.float32))])
print("holding", flush=True)
sys.stdin.read()
store.close()
"""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RECSTREAM_")}


def _holder(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "holding"
    return proc


def _release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0


def test_a_second_recstream_process_on_the_same_directory_exits_with_one_line(
    tmp_path: Path, bootstrap: str
) -> None:
    """``recstream run catalog`` (the test broker up, warnings and errors logged) on a directory
    another process holds: exit code 2, one line on stderr naming the directory and
    RECSTREAM_QDRANT_PATH; the holder's point survives and the directory opens again once the
    holder is gone."""
    path = tmp_path / "qdrant"
    holder = _holder(path)
    try:
        env = {
            **_env(),
            "RECSTREAM_KAFKA_BOOTSTRAP": bootstrap,
            "RECSTREAM_QDRANT_PATH": str(path),
            "RECSTREAM_HTTP_PORT": "0",
            "RECSTREAM_LOG_LEVEL": "warning",
        }
        done = subprocess.run(
            [sys.executable, "-m", "stream.cli", "run", "catalog"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        _release(holder)
    assert done.returncode == 2, done.stderr[-2_000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-2_000:]
    assert lines[0].startswith("recstream: the embedded store ")
    assert str(path) in lines[0] and "RECSTREAM_QDRANT_PATH" in lines[0]
    store = EdgeStore(path)
    try:
        store.ensure_collection("items", 384)
        [point] = store.retrieve("items", ["sku-1"], with_vectors=True).values()
        assert point.payload["title"] == "held"
        assert point.vector is not None and np.allclose(point.vector, 384**-0.5)
    finally:
        store.close()


def test_opening_a_held_directory_raises_store_locked(tmp_path: Path) -> None:
    """In code: :class:`StoreLocked` at once, even for a collection the holder never opened
    (the engine's own locks are per collection, taken when first used)."""
    holder = _holder(tmp_path)
    try:
        with pytest.raises(StoreLocked, match="RECSTREAM_QDRANT_PATH"):
            EdgeStore(tmp_path).ensure_collection("users", 4)
    finally:
        _release(holder)
    store = EdgeStore(tmp_path)
    store.ensure_collection("users", 4)
    store.upsert("users", [StoredPoint("u-1", {}, np.ones(4, dtype=np.float32))])
    store.close()
