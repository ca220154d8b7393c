"""SHA-256 digests of a model directory's files, by content: what the ONNX export cache is keyed
by, what names a model in the store (:func:`model_digest`), and what the packaged model is
checked against (:mod:`encoders.packaged`).

Names and modification times say nothing about content (a fine-tuned copy of a model keeps its
shape, and ``cp -p`` keeps its times), so every file is read. A process reads each file once:
digests are remembered by path and stat, the inode change time included, which no copy keeps.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path


def model_files(model_dir: Path) -> list[Path]:
    """The directory's files, sorted; hidden ones (``.git``, a hub cache's ``.cache``) left out:
    nothing loads them."""
    return sorted(
        p
        for p in model_dir.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(model_dir).parts)
    )


def file_digests(model_dir: Path) -> dict[str, str]:
    """SHA-256 (hex) of each of :func:`model_files`, by path relative to ``model_dir`` (``/``)."""
    out = {}
    for path in model_files(model_dir):
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
        out[path.relative_to(model_dir).as_posix()] = _file_digest(*key)
    return out


def model_digest(model_dir: Path) -> str:
    """One SHA-256 (hex) over the names and contents of the directory's files: two directories
    share it exactly when they hold the same files."""
    lines = "".join(f"{name}\t{digest}\n" for name, digest in file_digests(model_dir).items())
    return hashlib.sha256(lines.encode()).hexdigest()


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
