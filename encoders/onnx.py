"""The encoder's forward pass on ONNX Runtime (CPU), exported from the model directory and cached.

The exported graph takes ``input_ids`` and ``attention_mask`` and returns the pooled,
L2-normalised vectors, so a forward pass is one ``session.run``. onnxruntime's transformer
optimiser fuses each layer's attention, its skip connections with layer norm, and bias with GELU
(the torch model is exported with eager attention, the pattern those fusions recognise). For
``int8`` every MatMul and the fused attention are then quantised dynamically: per-channel int8
weights, activations quantised per batch (see README: measured 2.2x sentence-transformers on an
AVX2 CPU at mean cosine 0.992 to float32).

Exporting takes seconds, so the result is kept in a cache directory, keyed by the model's files,
the precision and the versions of the libraries that made it; a second process, or a restart,
loads it directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import structlog

from encoders.errors import EncoderError

log = structlog.get_logger(__name__)

PRECISIONS = ("float32", "int8")
_FORMAT = 1
"""Bump when the exported graph changes shape or meaning: old cache entries are then unused."""
# model types onnxruntime's optimiser knows how to fuse; others are exported unfused
_OPTIMISER_TYPES = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "mpnet": "bert"}


def onnx_available() -> bool:
    """True when onnxruntime and onnx (the exporter's and optimiser's format library) import."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def default_cache_dir() -> Path:
    """``$RECSTREAM_ENCODER_CACHE``, else ``$XDG_CACHE_HOME/recstream/onnx`` (``~/.cache``)."""
    configured = os.environ.get("RECSTREAM_ENCODER_CACHE")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "recstream" / "onnx"


def cache_key(model_dir: Path, pooling: str, precision: str) -> str:
    """A digest of everything the exported file depends on."""
    import onnxruntime
    import torch
    import transformers

    digest = hashlib.sha256()
    parts = [f"format={_FORMAT}", f"pooling={pooling}", f"precision={precision}"]
    parts += [f"torch={torch.__version__}", f"onnxruntime={onnxruntime.__version__}"]
    parts += [f"transformers={transformers.__version__}"]
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        stat = path.stat()
        parts.append(f"{path.relative_to(model_dir)}:{stat.st_size}:{stat.st_mtime_ns}")
    digest.update("\n".join(parts).encode())
    return digest.hexdigest()[:20]


def exported_model(
    model_dir: Path, name: str, pooling: str, precision: str, cache: Path | None = None
) -> Path:
    """The ONNX file for this model, pooling and precision: from the cache, or exported now."""
    if precision not in PRECISIONS:
        raise EncoderError(f"the ONNX runtime runs float32 or int8, not {precision}")
    cache = cache or default_cache_dir()
    target = cache / f"{name}-{precision}-{cache_key(model_dir, pooling, precision)}.onnx"
    if target.is_file():
        return target
    started = time.perf_counter()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache, prefix=".export-") as tmp:
            work = Path(tmp)
            model_type, heads, hidden = _export(model_dir, pooling, work / "raw.onnx")
            current = _optimise(work / "raw.onnx", work / "fused.onnx", model_type, heads, hidden)
            if precision == "int8":
                current = _quantise(current, work / "int8.onnx")
            # atomic: a concurrent process either sees the whole file or builds its own
            os.replace(current, target)
    except OSError as exc:
        raise EncoderError(
            f"cannot write the ONNX export to {cache}: {exc}; set RECSTREAM_ENCODER_CACHE to a "
            "writable directory or RECSTREAM_ENCODER_RUNTIME=torch"
        ) from exc
    log.info(
        "encoder.onnx_exported",
        path=str(target),
        precision=precision,
        export_ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return target


def _export(model_dir: Path, pooling: str, out: Path) -> tuple[str, int, int]:
    """Export model + pooling + normalisation; (model type, attention heads, hidden size)."""
    import torch
    from transformers import AutoModel

    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.int64)
    mask = (ids != 0).to(torch.int64)
    dynamic = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
    with _quiet():
        model = AutoModel.from_pretrained(
            str(model_dir), local_files_only=True, dtype=torch.float32, attn_implementation="eager"
        ).eval()
        graph = _pooled_module(model, pooling).eval()
        torch.onnx.export(
            graph,
            (ids, mask),
            str(out),
            input_names=["input_ids", "attention_mask"],
            output_names=["vectors"],
            dynamic_axes={**dynamic, "vectors": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    config = model.config
    return str(config.model_type), int(config.num_attention_heads), int(config.hidden_size)


def _optimise(raw: Path, out: Path, model_type: str, heads: int, hidden: int) -> Path:
    """The graph with onnxruntime's transformer fusions, or ``raw`` where they do not apply."""
    kind = _OPTIMISER_TYPES.get(model_type)
    if kind is None:
        log.info("encoder.onnx_unfused", model_type=model_type)
        return raw
    from onnxruntime.transformers import optimizer

    with _quiet():
        fused = optimizer.optimize_model(
            str(raw), model_type=kind, num_heads=heads, hidden_size=hidden
        )
        fused.save_model_to_file(str(out))
    stats = {k: v for k, v in fused.get_fused_operator_statistics().items() if v}
    log.info("encoder.onnx_fused", **stats)
    return out


def _quantise(model: Path, out: Path) -> Path:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(
            str(model),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=True,
            # fused operators have no type in ONNX's shape inference: their outputs are float
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter, optimiser and quantiser warn and log at length about what is expected;
    transformers draws a progress bar while it loads weights."""
    from transformers.utils import logging as hf_logging

    loggers = [logging.getLogger(n) for n in ("onnxruntime", "root", "torch.onnx")]
    levels = [lg.level for lg in loggers]
    bar_was_on = hf_logging.is_progress_bar_enabled()
    cast(Any, hf_logging.disable_progress_bar)()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)
            if bar_was_on:
                cast(Any, hf_logging.enable_progress_bar)()


def _pooled_module(model: Any, pooling: str) -> Any:
    """``model`` followed by recstream's pooling and normalisation, as one module to export."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask)
            states = hidden.last_hidden_state
            if pooling == "cls":
                pooled = states[:, 0]
            else:
                weights = attention_mask.unsqueeze(-1).to(states.dtype)
                pooled = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return Pooled()


def load_forward(
    model_dir: Path,
    name: str,
    pooling: str,
    precision: str,
    threads: int = 0,
    cache: Path | None = None,
) -> OnnxForward:
    """A session on the cached export, exported first where needed. A cached file that
    onnxruntime cannot load (truncated, say, by a full disk) is exported anew, once."""
    path = exported_model(model_dir, name, pooling, precision, cache)
    try:
        return OnnxForward(path, threads)
    except EncoderError as exc:
        log.warning("encoder.onnx_cache_unreadable", path=str(path), error=str(exc)[:300])
        path.unlink(missing_ok=True)
        return OnnxForward(exported_model(model_dir, name, pooling, precision, cache), threads)


class OnnxForward:
    """One onnxruntime session on the CPU: token ids and mask in, unit vectors out."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per physical core
        options.inter_op_num_threads = 1
        # Threads that spin between runs take CPU from the consumer's own work (store writes,
        # publishing) on the same cores: idle threads sleep instead.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # a truncated or foreign file in the cache
            raise EncoderError(f"onnxruntime cannot load {path}: {exc}") from exc
        self.path = path

    def __call__(
        self, input_ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        out = self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})
        return np.asarray(cast(list[Any], out)[0], dtype=np.float32)
