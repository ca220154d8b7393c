"""The encoder's forward pass on ONNX Runtime (CPU), exported from the model directory and cached.

The exported graph takes ``input_ids`` and ``attention_mask`` and returns the pooled,
L2-normalised vectors, so a forward pass is one ``session.run``. onnxruntime's transformer
optimiser fuses each layer's attention, its skip connections with layer norm, and bias with GELU
(the torch model is exported with eager attention, the pattern those fusions recognise). For
``int8`` every MatMul and the fused attention are then quantised dynamically: per-channel int8
weights, activations quantised per batch: about twice float32's speed, at a mean cosine above
0.99 to float32 (bench/README.md).

Exporting takes seconds, so the result is kept in a cache directory, keyed by the content of the
model's files (SHA-256), the precision and the versions of the libraries that made it; a second
process, or a restart, loads it directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import structlog

from encoders.digests import model_digest
from encoders.errors import EncoderError
from encoders.hf import no_progress_bar, pool

log = structlog.get_logger(__name__)

PRECISIONS = ("float32", "int8")
_WORK_PREFIX = ".export-"
_FORMAT = 1
"""Bump when the exported graph changes shape or meaning: old cache entries are then unused."""
_BERT_LIKE = frozenset({"bert", "roberta", "xlm-roberta", "mpnet"})
"""Model types onnxruntime's BERT fusions apply to; others are exported unfused."""


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
    """A digest of everything the exported file depends on: the model's files (by name and
    content: a fine-tuned copy of the same shape, with its times kept, is another model), the
    pooling, the precision and the versions of the libraries that export and run it."""
    import onnx
    import onnxruntime
    import torch
    import transformers

    digest = hashlib.sha256()
    parts = [f"format={_FORMAT}", f"pooling={pooling}", f"precision={precision}"]
    parts += [f"torch={torch.__version__}", f"onnxruntime={onnxruntime.__version__}"]
    parts += [f"transformers={transformers.__version__}", f"onnx={onnx.__version__}"]
    parts += [f"model={model_digest(model_dir)}"]
    digest.update("\n".join(parts).encode())
    return digest.hexdigest()[:20]


def exported_model(
    model_dir: Path, name: str, pooling: str, precision: str, cache: Path | None = None
) -> Path:
    """The ONNX file for this model, pooling and precision: from the cache, or exported now.

    Raises :class:`EncoderError` when the cache cannot be written or the export fails (a model
    the exporter or the optimiser cannot handle); the message says what to change.
    """
    if precision not in PRECISIONS:
        raise EncoderError(f"the ONNX runtime runs float32 or int8, not {precision}")
    cache = cache or default_cache_dir()
    target = cache / f"{name}-{precision}-{cache_key(model_dir, pooling, precision)}.onnx"
    if target.is_file():
        return target
    started = time.perf_counter()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(cache)
        work = Path(tempfile.mkdtemp(dir=cache, prefix=_WORK_PREFIX))
    except OSError as exc:
        raise _unwritable(cache, exc) from exc
    try:
        try:
            current = _build(model_dir, pooling, precision, work)
        except EncoderError:
            raise
        except Exception as exc:
            raise EncoderError(
                f"exporting {model_dir} to ONNX failed ({type(exc).__name__}: {exc}"[:400]
                + "); set RECSTREAM_ENCODER_RUNTIME=torch to run it on torch"
            ) from exc
        try:
            # atomic: a concurrent process either sees the whole file or builds its own
            os.replace(current, target)
        except OSError as exc:
            raise _unwritable(cache, exc) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info(
        "encoder.onnx_exported",
        path=str(target),
        precision=precision,
        export_ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return target


def _unwritable(cache: Path, exc: OSError) -> EncoderError:
    return EncoderError(
        f"cannot write the ONNX export to {cache}: {exc}; set RECSTREAM_ENCODER_CACHE to a "
        "writable directory or RECSTREAM_ENCODER_RUNTIME=torch"
    )


def _remove_abandoned(cache: Path) -> None:
    """Work directories of exports that died (killed mid-export) over an hour ago."""
    for path in cache.glob(f"{_WORK_PREFIX}*"):
        with contextlib.suppress(OSError):
            if time.time() - path.stat().st_mtime > 3_600:
                shutil.rmtree(path, ignore_errors=True)


def _build(model_dir: Path, pooling: str, precision: str, work: Path) -> Path:
    """Export, fuse, quantise (int8) and check the result against torch: the file to keep."""
    import torch
    from transformers import AutoModel

    with _quiet():
        # float32 and eager attention: the pattern onnxruntime's optimiser fuses
        model = AutoModel.from_pretrained(
            str(model_dir), local_files_only=True, dtype=torch.float32, attn_implementation="eager"
        ).eval()
    graph = _pooled_module(model, pooling).eval()
    config = model.config
    vocab = int(config.vocab_size)
    raw = work / "raw.onnx"
    ids, mask = _probe(vocab, (4, 3))
    dynamic = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
    with _quiet():
        torch.onnx.export(
            graph,
            (ids, mask),
            str(raw),
            input_names=["input_ids", "attention_mask"],
            output_names=["vectors"],
            dynamic_axes={**dynamic, "vectors": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    heads, hidden = int(config.num_attention_heads), int(config.hidden_size)
    current = _optimise(raw, work / "fused.onnx", str(config.model_type), heads, hidden)
    if precision == "int8":
        current = _quantise(current, work / "int8.onnx")
    _verify(current, graph, vocab, precision)
    return current


def _probe(vocab_size: int, lengths: tuple[int, ...]) -> tuple[Any, Any]:
    """Token ids (deterministic, within the vocabulary) and mask, right-padded, one row per
    length."""
    import torch

    ids = torch.zeros((len(lengths), max(lengths)), dtype=torch.int64)
    mask = torch.zeros_like(ids)
    for row, length in enumerate(lengths):
        ids[row, :length] = (torch.arange(length) * 7919 + 101 * (row + 1)) % (vocab_size - 1) + 1
        mask[row, :length] = 1
    return ids, mask


def _verify(path: Path, graph: Any, vocab_size: int, precision: str) -> None:
    """The file, run on a batch of another shape than the one traced, gives torch's vectors: a
    trace that froze a shape, or a broken fusion, fails here, before it is cached."""
    import torch

    ids, mask = _probe(vocab_size, (9, 6, 2))
    with torch.inference_mode():
        expected = graph(ids, mask).numpy()
    got = OnnxForward(path)(ids.numpy(), mask.numpy())
    floor = 0.999 if precision == "float32" else 0.9
    agreement = (expected.astype(np.float64) * got.astype(np.float64)).sum(axis=1)
    if got.shape != expected.shape or not np.all(agreement >= floor):
        raise EncoderError(
            f"the {precision} ONNX export disagrees with torch on a test batch (cosines "
            f"{np.round(agreement, 4).tolist()}); set RECSTREAM_ENCODER_RUNTIME=torch"
        )


def _optimise(raw: Path, out: Path, model_type: str, heads: int, hidden: int) -> Path:
    """The graph with onnxruntime's transformer fusions, or ``raw`` where they do not apply."""
    if model_type not in _BERT_LIKE:
        log.info("encoder.onnx_unfused", model_type=model_type)
        return raw
    from onnxruntime.transformers import optimizer

    with _quiet():
        fused = optimizer.optimize_model(
            str(raw), model_type="bert", num_heads=heads, hidden_size=hidden
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
    """The exporter, optimiser and quantiser warn and log at length about what is expected (a
    shape frozen by the trace would be caught by :func:`_verify`, not by a warning)."""
    loggers = [logging.getLogger(n) for n in ("onnxruntime", "root", "torch.onnx")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings(), no_progress_bar():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def _pooled_module(model: Any, pooling: str) -> Any:
    """``model`` followed by recstream's pooling and normalisation, as one module to export."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask)
            return pool(hidden.last_hidden_state, attention_mask, pooling)

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
