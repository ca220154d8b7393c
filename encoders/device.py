"""Where the encoder runs and in which precision: a pure decision, given what the machine has."""

from __future__ import annotations

import re

from encoders.errors import EncoderError

_CUDA = re.compile(r"^cuda(:\d+)?$")


def resolve_device(setting: str, cuda_available: bool, bf16_supported: bool) -> tuple[str, str]:
    """``(device, dtype name)`` for a ``RECSTREAM_DEVICE`` value.

    ``auto`` takes CUDA when present, else the CPU. On CUDA the model runs in bfloat16, or
    float16 where the GPU lacks bfloat16; on the CPU in float32 (half precision is slower there).
    """
    if setting == "auto":
        setting = "cuda" if cuda_available else "cpu"
    if setting == "cpu":
        return "cpu", "float32"
    if _CUDA.match(setting):
        if not cuda_available:
            raise EncoderError(
                f"RECSTREAM_DEVICE is {setting!r} but CUDA is not available to torch (no GPU, "
                "no driver, or a CPU build of torch); set RECSTREAM_DEVICE=cpu or auto, or "
                "install a CUDA build of torch"
            )
        return setting, "bfloat16" if bf16_supported else "float16"
    raise EncoderError(f"RECSTREAM_DEVICE must be auto, cpu, cuda or cuda:N, not {setting!r}")
