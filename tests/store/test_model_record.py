"""A store remembers which model made its items' vectors: a catalog process started with another
model of the same dimension is refused (exit code 2, one line pointing to re-embedding) instead
of mixing two models' vectors; the same model, even from another directory, starts."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import numpy as np
import pytest
import structlog
from models import copy_model, scale_tensor

from encoders.hybrid import vector_dimension
from stream import cli
from stream.collections import ITEMS
from stream.runner import check_store_model
from stream.settings import Settings
from stream.store import StoredPoint
from stream.store.edge import EdgeStore
from stream.store.model_record import MODELS, ModelChanged, ModelRecord, check_model


def _run_catalog(
    argv: list[str], bootstrap: str, monkeypatch: pytest.MonkeyPatch, which: str = "catalog"
) -> int:
    """``recstream run <which>`` in this process (against the test broker), stopped before its
    consumers would start."""
    for name in [n for n in os.environ if n.startswith("RECSTREAM_")]:
        monkeypatch.delenv(name)

    def no_consumers(*args: object) -> None:
        raise AssertionError("the consumers were built")

    monkeypatch.setattr("stream.runner.build_consumers", no_consumers)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        argv = [f"--kafka-bootstrap={bootstrap}", "--http-port=0", "--log-level=error", *argv]
        return cli.main(["run", which, *argv])
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        structlog.reset_defaults()


def test_another_model_of_the_same_dimension_is_refused(
    tmp_path: Path,
    bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The first start records the packaged model for the items; a start with a fine-tuned copy
    (same name, dimension, file sizes and times; one weight tensor changed) exits 2 with one
    line naming RECSTREAM_MODEL and re-embedding; the recorded model stays."""
    path = tmp_path / "qdrant"
    store = EdgeStore(path)
    check_store_model(Settings(qdrant_path=str(path)), store)
    dim = vector_dimension(Settings())
    name = "all-MiniLM-L6-v2+chargrams1024@0.5"  # the packaged model fused with character n-grams
    item = StoredPoint("sku-1", {"model": name}, np.ones(dim, dtype=np.float32))
    store.upsert(ITEMS, [item])
    [record] = store.retrieve(MODELS, [ITEMS]).values()
    store.close()
    assert record.payload["name"] == name and record.payload["dim"] == dim
    tuned = copy_model(tmp_path / "tuned" / "all-MiniLM-L6-v2")
    scale_tensor(tuned)
    code = _run_catalog([f"--qdrant-path={path}", f"--model={tuned}"], bootstrap, monkeypatch)
    assert code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("recstream: the store's 'items' vectors were made by another model")
    assert "RECSTREAM_MODEL" in line and "re-embed" in line
    store = EdgeStore(path)
    store.ensure_collection(MODELS, 1)
    assert store.retrieve(MODELS, [ITEMS])[ITEMS].payload == record.payload
    store.close()


def test_another_lexical_mix_is_refused(
    tmp_path: Path,
    bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same model fused with character n-grams at another weight makes other vectors of
    the same length: the start is refused like one with another model, by the catalog consumer
    and by the behaviour consumer (its profiles and HTTP search compare with those vectors)."""
    path = tmp_path / "qdrant"
    store = EdgeStore(path)
    check_store_model(Settings(qdrant_path=str(path)), store)
    store.close()
    for which in ("catalog", "behaviour"):
        argv = [f"--qdrant-path={path}", "--lexical-weight=0.3"]
        assert _run_catalog(argv, bootstrap, monkeypatch, which) == 2, which
        [line] = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("recstream: the store's 'items' vectors were made by another model")
        assert "chargrams1024@0.3" in line and "RECSTREAM_LEXICAL_WEIGHT" in line


def test_the_same_model_from_another_directory_starts(
    tmp_path: Path, bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exact copy of the recorded model (another path, the same files) passes the check: the
    process goes on to build its consumers."""
    path = tmp_path / "qdrant"
    store = EdgeStore(path)
    check_store_model(Settings(qdrant_path=str(path)), store)
    store.close()
    copy = copy_model(tmp_path / "copy" / "all-MiniLM-L6-v2")
    with pytest.raises(AssertionError, match="the consumers were built"):
        _run_catalog([f"--qdrant-path={path}", f"--model={copy}"], bootstrap, monkeypatch)


def test_a_store_from_before_the_record_is_checked_by_its_items(tmp_path: Path) -> None:
    """Items written before records existed name their model: the same name is recorded, another
    name is refused."""
    record = ModelRecord("all-MiniLM-L6-v2", "ab" * 32, 4)
    store = EdgeStore(tmp_path)
    store.ensure_collection(ITEMS, 4)
    store.upsert(ITEMS, [StoredPoint("sku-1", {"model": "e5-small"}, np.ones(4, np.float32))])
    with pytest.raises(ModelChanged, match="e5-small"):
        check_model(store, ITEMS, record)
    ones = np.ones(4, dtype=np.float32)
    store.upsert(ITEMS, [StoredPoint("sku-1", {"model": "all-MiniLM-L6-v2"}, ones)])
    check_model(store, ITEMS, record)
    assert store.retrieve(MODELS, [ITEMS])[ITEMS].payload["digest"] == "ab" * 32
    with pytest.raises(ModelChanged):
        check_model(store, ITEMS, ModelRecord("all-MiniLM-L6-v2", "cd" * 32, 4))
    store.close()


def test_serve_refuses_a_store_embedded_by_another_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`recstream serve` would encode search queries with its model and compare them with the
    stored vectors: with another model recorded for the items it exits 2 with the same line as
    the catalog consumer, before serving anything."""
    path = tmp_path / "qdrant"
    store = EdgeStore(path)
    check_store_model(Settings(qdrant_path=str(path)), store)
    store.upsert(
        MODELS,
        [StoredPoint(ITEMS, {"name": "e5-small", "digest": "ab" * 32, "dim": 384}, np.ones(1))],
    )
    store.close()
    for name in [n for n in os.environ if n.startswith("RECSTREAM_")]:
        monkeypatch.delenv(name)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = cli.main(
            ["serve", f"--http-port={port}", f"--qdrant-path={path}", "--log-level=error"]
        )
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        structlog.reset_defaults()
    assert code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("recstream: the store's 'items' vectors were made by another model")
    assert "e5-small" in line and "RECSTREAM_MODEL" in line
