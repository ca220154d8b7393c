"""``recstream bench store``: upserts/s, batched top-10 queries/s and memory of each adapter.

Each adapter and size runs in a fresh process, so its resident memory can be measured as the
growth from an empty collection to a full one (vectors and queries are generated before the
baseline). The adapters are the pipeline's own: ``EdgeStore`` (Qdrant Edge, embedded) and
``ServerStore`` in qdrant-client's **local mode** (``QdrantClient(path=...)``: qdrant-client's
pure-Python engine in this process, not a Qdrant server). Vectors are random unit vectors;
payloads hold only the key. Slow cases stop at a time budget and record what they reached.
"""

from __future__ import annotations

import gc
import multiprocessing
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recstream_tools.bench.report import LoadMonitor, figure, new_result, write_outputs

NAME = "store"
DIM = 384
K = 10
UPSERT_BATCH = 256
QUERY_BATCH = 64
RECALL_QUERIES = 100
COLLECTION = "bench"
ADAPTERS = {
    "edge": "EdgeStore (Qdrant Edge, embedded)",
    "local": "ServerStore, qdrant-client local mode (not a server)",
}


@dataclass(frozen=True)
class Case:
    adapter: str
    size: int
    upsert_budget_s: float
    query_budget_s: float
    queries: int
    local_location: str = "disk"


def _memory() -> dict[str, int]:
    """Resident set of this process in bytes: total, anonymous, file-backed (Linux)."""
    wanted = {"VmRSS:": "rss", "RssAnon:": "anon", "RssFile:": "file"}
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            fields = line.split()
            if fields and fields[0] in wanted:
                out[wanted[fields[0]]] = int(fields[1]) * 1024
    except OSError:
        import resource

        out["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


def _units(rng: np.random.Generator, n: int) -> npt.NDArray[np.float32]:
    v = rng.standard_normal((n, DIM), dtype=np.float32)
    return np.asarray(v / np.linalg.norm(v, axis=1, keepdims=True), dtype=np.float32)


def _open(case: Case, root: Path) -> Any:
    if case.adapter == "edge":
        from stream.store.edge import EdgeStore

        return EdgeStore(root / "edge")
    from stream.store.server import ServerStore

    where = ":memory:" if case.local_location == "memory" else str(root / "local")
    return ServerStore(location=where)


def _query_rate(
    store: Any, queries: npt.NDArray[np.float32], budget_s: float
) -> tuple[float, int, list[list[str]]]:
    """(queries/s, queries run, the first batches' result keys) in batches of QUERY_BATCH."""
    from stream.store import SearchQuery

    done, found = 0, list[list[str]]()
    started = time.perf_counter()
    for start in range(0, len(queries), QUERY_BATCH):
        batch = [SearchQuery(q, K) for q in queries[start : start + QUERY_BATCH]]
        hits = store.search(COLLECTION, batch)
        done += len(batch)
        if len(found) < RECALL_QUERIES:
            found.extend([h.key for h in row] for row in hits)
        if time.perf_counter() - started > budget_s:
            break
    return done / (time.perf_counter() - started), done, found


def _recall(
    found: list[list[str]], queries: npt.NDArray[np.float32], vectors: npt.NDArray[np.float32]
) -> float:
    """Mean recall@K of the returned keys against exact (brute-force) top-K."""
    n = min(len(found), RECALL_QUERIES)
    scores = queries[:n] @ vectors.T
    exact = np.argsort(-scores, axis=1)[:, :K]
    hits = [len({f"k{j}" for j in exact[i]} & set(found[i])) / K for i in range(n)]
    return round(float(np.mean(hits)), 4)


def measure(case: Case) -> dict[str, Any]:
    """One adapter at one size, in this process (run it in a fresh one: memory is measured)."""
    from stream.store import StoredPoint

    rng = np.random.default_rng(case.size)
    vectors = _units(rng, case.size)
    queries = _units(rng, case.queries)
    out: dict[str, Any] = {**asdict(case), "adapter_name": ADAPTERS[case.adapter]}
    with tempfile.TemporaryDirectory(prefix="recstream-bench-store-") as tmp:
        store = _open(case, Path(tmp))
        try:
            store.ensure_collection(COLLECTION, DIM)
            gc.collect()
            before = _memory()
            inserted, started = 0, time.perf_counter()
            for start in range(0, case.size, UPSERT_BATCH):
                end = min(start + UPSERT_BATCH, case.size)
                store.upsert(
                    COLLECTION, [StoredPoint(f"k{i}", {}, vectors[i]) for i in range(start, end)]
                )
                inserted = end
                if time.perf_counter() - started > case.upsert_budget_s:
                    break
            store.flush()
            upsert_s = time.perf_counter() - started
            gc.collect()
            after = _memory()
            per_100k = 100_000 / max(inserted, 1)
            out |= {
                "inserted": inserted,
                "complete": inserted == case.size,
                "upsert_s": round(upsert_s, 2),
                "upserts_per_s": round(inserted / upsert_s, 1),
                "rss_delta_mib": round((after["rss"] - before["rss"]) / 2**20, 1),
                "rss_mib_per_100k": round((after["rss"] - before["rss"]) / 2**20 * per_100k, 1),
                "anon_mib_per_100k": round(
                    (after.get("anon", 0) - before.get("anon", 0)) / 2**20 * per_100k, 1
                ),
            }
            rate, done, found = _query_rate(store, queries, case.query_budget_s)
            out |= {
                "queries_per_s": round(rate, 1),
                "queries_run": done,
                "recall_at_10": _recall(found, queries, vectors[:inserted]),
            }
            if case.adapter == "edge":
                out |= _after_optimize(store, queries, vectors[:inserted], case.query_budget_s)
        finally:
            store.close()
    return out


def _after_optimize(
    store: Any,
    queries: npt.NDArray[np.float32],
    vectors: npt.NDArray[np.float32],
    budget_s: float,
) -> dict[str, Any]:
    """Queries/s once Qdrant Edge has built its HNSW index (the pipeline never asks it to)."""
    started = time.perf_counter()
    # EdgeStore does not expose optimize(): reach the shard to measure what it would bring.
    store._shard(COLLECTION).optimize()
    optimize_s = time.perf_counter() - started
    rate, done, found = _query_rate(store, queries, budget_s)
    return {
        "optimize_s": round(optimize_s, 2),
        "optimized_queries_per_s": round(rate, 1),
        "optimized_queries_run": done,
        "optimized_recall_at_10": _recall(found, queries, vectors),
        "optimized_rss_mib": round(_memory()["rss"] / 2**20, 1),
    }


def _child(case: Case, conn: Connection) -> None:
    try:
        conn.send(measure(case))
    except Exception as exc:  # reported in the result, the other cases still run
        conn.send({**asdict(case), "error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def _in_subprocess(case: Case) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(case, child), name=f"bench-{case.adapter}")
    proc.start()
    child.close()
    limit = case.upsert_budget_s + 3 * case.query_budget_s + 900
    result: dict[str, Any] = (
        parent.recv() if parent.poll(limit) else {**asdict(case), "error": "timed out"}
    )
    proc.join(60)
    if proc.is_alive():
        proc.kill()
    return result


def run(
    adapters: Sequence[str],
    sizes: Sequence[int],
    upsert_budget_s: float,
    query_budget_s: float,
    queries: int,
    local_location: str,
    out_dir: Path,
) -> dict[str, Any]:
    cases = []
    with LoadMonitor() as load:
        for adapter in adapters:
            for size in sizes:
                case = Case(adapter, size, upsert_budget_s, query_budget_s, queries, local_location)
                print(f"  {ADAPTERS[adapter]}, {size:,} vectors ...", flush=True)
                cases.append(_in_subprocess(case))
    result = new_result(
        NAME,
        model=f"random unit vectors, {DIM} dims, cosine",
        device="cpu",
        method={
            "upsert_batch": UPSERT_BATCH,
            "query_batch": QUERY_BATCH,
            "k": K,
            "payload": "the key only",
            "memory": "resident set growth from the empty to the filled collection, in a "
            "fresh process per case, scaled to 100,000 items",
            "local_mode": "qdrant-client local mode: an in-process Python engine, not a server",
            "edge_optimized": "after EdgeShard.optimize() (HNSW built); recstream's consumers "
            "never call it, so the plain figures are what the pipeline gets",
        },
        cases=cases,
        load=load.summary,
    )
    result["paths"] = [str(p) for p in write_outputs(result, NAME, out_dir, lambda: _plot(result))]
    return result


def _plot(result: dict[str, Any]) -> Any:
    fig, axes = figure(1, 3, width=12.0, height=4.6)
    ok = [c for c in result["cases"] if "error" not in c]
    if not ok:
        axes[0][0].text(0.1, 0.5, "every case failed: see the JSON")
        return fig
    labels = [
        f"{c['adapter']}\n{c['inserted']:,}" + ("" if c["complete"] else "\n(time budget)")
        for c in ok
    ]
    colours = ["tab:blue" if c["adapter"] == "edge" else "tab:red" for c in ok]
    ups, queries, memory = axes[0]
    ups.bar(labels, [c["upserts_per_s"] for c in ok], color=colours)
    ups.set_yscale("log")
    ups.set_title("upserts/s (batches of 256)", fontsize=10)
    queries.bar(labels, [c["queries_per_s"] for c in ok], color=colours, label="as the pipeline")
    opt = [c.get("optimized_queries_per_s") for c in ok]
    xs = [i for i, v in enumerate(opt) if v]
    queries.scatter(
        xs, [opt[i] for i in xs], marker="D", color="k", zorder=3, label="edge after optimize()"
    )
    queries.set_yscale("log")
    queries.set_title("top-10 queries/s (batches of 64)", fontsize=10)
    queries.legend(fontsize=7, loc="upper right")
    anon = [c["anon_mib_per_100k"] for c in ok]
    other = [max(0.0, c["rss_mib_per_100k"] - a) for c, a in zip(ok, anon, strict=True)]
    memory.bar(labels, anon, color=colours, label="anonymous")
    memory.bar(labels, other, bottom=anon, color=colours, alpha=0.35, label="file-backed (mmap)")
    memory.set_title("resident MiB per 100,000 items", fontsize=10)
    memory.legend(fontsize=7)
    fig.suptitle("Vector store adapters: edge = EdgeStore, local = qdrant-client local mode")
    return fig


def summary(result: dict[str, Any]) -> str:
    head = (
        f"{'adapter':<8} {'size':>8} {'inserted':>9} {'upserts/s':>10} {'queries/s':>10} "
        f"{'recall':>7} {'opt q/s':>8} {'opt rec':>8} {'MiB/100k':>9}"
    )
    lines = [head]
    for c in result["cases"]:
        if "error" in c:
            lines.append(f"{c['adapter']:<8} {c['size']:>8,} error: {c['error']}")
            continue
        lines.append(
            f"{c['adapter']:<8} {c['size']:>8,} {c['inserted']:>9,} {c['upserts_per_s']:>10,.0f} "
            f"{c['queries_per_s']:>10,.1f} {c['recall_at_10']:>7} "
            f"{c.get('optimized_queries_per_s', '-')!s:>8} "
            f"{c.get('optimized_recall_at_10', '-')!s:>8} {c['rss_mib_per_100k']:>9}"
        )
    lines.append(f"load: {result['load']}")
    return "\n".join(lines)
