"""``recstream migrate`` as a user runs it against the embedded store (whose one process is then
the migration: the consumers are stopped), and what the consumers do at their next start."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from api import free_port
from kit import (
    assert_lists_match_brute_force,
    committed_count,
    created,
    final_lists,
    publish,
    settings_env,
    view_message,
    wait_for,
)
from models import copy_model, scale_tensor

from encoders.hybrid import vector_layout
from recstream_tools.sample_catalog import sample_items
from stream.collections import ITEMS, ensure_collections
from stream.generations import Generation, GenerationStore, read_pointer
from stream.kafka.inspect import read_topic
from stream.runner import run_consumers
from stream.settings import Settings
from stream.store import StoredPoint, VectorStore
from stream.store.edge import EdgeStore


def _recstream(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", "migrate", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )


Done = Callable[[VectorStore], bool]


def _lists_exact(settings: Settings, generation: Generation) -> Done:
    def exact(store: VectorStore) -> bool:
        view = GenerationStore(store, generation)
        try:
            assert_lists_match_brute_force(final_lists(settings), view, settings.neighbours_k)
        except (AssertionError, KeyError, ValueError):  # not opened yet, or empty
            return False
        return True

    return exact


def _run_until(settings: Settings, done: Done, what: str, which: str = "catalog") -> None:
    """``recstream run WHICH`` (in this process, on a store it shares with ``done``) until
    ``done``, then stopped."""
    store = EdgeStore(settings.qdrant_path)
    stop = threading.Event()
    codes: list[int] = []
    runner = threading.Thread(
        target=lambda: codes.append(run_consumers(settings, which, stop, store)),
        daemon=True,
    )
    runner.start()
    try:
        wait_for(lambda: bool(final_lists(settings)) and done(store), timeout_s=90, what=what)
    finally:
        stop.set()
        runner.join(60)
        store.close()
    assert codes == [0]


def recommendations_sent(settings: Settings) -> Counter[bytes | None]:
    """Messages on the recommendations topic, by shopper."""
    return Counter(r.key for r in read_topic(settings, settings.topic_recommendations))


def recommended_again(settings: Settings, before: Counter[bytes | None]) -> Callable[[], bool]:
    """Whether each shopper in ``before`` got exactly one more recommendations message (none
    of them acted since)."""

    def done() -> bool:
        return recommendations_sent(settings) == Counter({k: n + 1 for k, n in before.items()})

    return done


def test_migrate_then_run_publishes_every_list_of_the_new_model_without_an_event(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """``migrate`` (exit 0) switches the store to generation 1; the next ``run`` publishes
    every item's list made of the new model's vectors and every shopper's recommendations
    although no event arrives; ``--status`` names the generation; ``--rollback`` serves
    generation 0 again and its lists and recommendations come back; ``--drop 1`` then removes
    generation 1's collections (the served one's it refuses), and no rollback goes to it."""
    settings = make_settings(batch_max_items=8)  # the owed lists in shares of 8
    items = sample_items(20, seed=11)
    publish(settings, settings.topic_items, created(items))
    shoppers = ["u-1", "u-2", "u-3"]
    views = [view_message(u, n) for n, u in enumerate(shoppers * 2)]
    publish(settings, settings.topic_user_events, views)
    first = Generation.configured(settings)

    def all_listed(store: VectorStore) -> bool:
        lists = final_lists(settings)
        return all(lists.get(i["item_id"]) for i in items)

    group, topic = settings.behaviour_group(), settings.topic_user_events

    def first_done(store: VectorStore) -> bool:
        return all_listed(store) and committed_count(settings, group, topic) == len(views)

    _run_until(settings, first_done, "the first lists and recommendations", "all")
    before = final_lists(settings)
    first_count = recommendations_sent(settings)
    assert set(first_count) == {u.encode() for u in shoppers}

    tuned = copy_model(tmp_path / "tuned")
    scale_tensor(tuned, by=0.25)
    done = _recstream(settings, "--model", str(tuned))
    assert done.returncode == 0, done.stderr
    assert "generation 1 served" in done.stdout
    status = _recstream(settings, "--status")
    assert status.returncode == 0 and status.stdout.startswith(f"generation 1: {tuned}")

    store = EdgeStore(settings.qdrant_path)
    try:
        pointer = read_pointer(store)
    finally:
        store.close()
    assert pointer is not None
    listed = _lists_exact(settings, pointer)
    again = recommended_again(settings, first_count)
    _run_until(settings, lambda s: listed(s) and again(), "the new model's lists", "all")
    after = final_lists(settings)
    assert after != before  # other vectors, other scores: every list was published again

    back = _recstream(settings, "--rollback")
    assert back.returncode == 0, back.stderr
    listed = _lists_exact(settings, first)
    again = recommended_again(settings, first_count + Counter(first_count.keys()))
    _run_until(settings, lambda s: listed(s) and again(), "generation 0's lists again", "all")

    served = _recstream(settings, "--drop", "0")
    assert served.returncode == 2 and "served" in served.stderr
    dropped = _recstream(settings, "--drop", "1")
    assert dropped.returncode == 0, dropped.stderr
    assert not any(Path(settings.qdrant_path).glob("*_g1"))
    assert (Path(settings.qdrant_path) / "items").is_dir()
    gone = _recstream(settings, "--rollback")
    assert gone.returncode == 2 and "dropped" in gone.stderr


def test_a_model_that_cannot_load_is_refused_with_its_reason(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """``--model`` naming no model directory: exit 2 and one line saying why, no traceback,
    nothing switched."""
    settings = make_settings()
    refused = _recstream(settings, "--model", str(tmp_path / "no-such-model"))
    assert refused.returncode == 2, refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("recstream: ") and "no-such-model" in last, refused.stderr
    assert "Traceback" not in refused.stderr
    store = EdgeStore(settings.qdrant_path)
    try:
        assert read_pointer(store) is None
    finally:
        store.close()


def test_migrate_moves_a_store_of_whole_hybrid_vectors_to_sparse_vectors(
    make_settings: Callable[..., Settings],
) -> None:
    """A store made before sparse vectors (hybrid vectors kept whole, one dense vector) is
    served as it is; ``migrate`` with the same settings builds generation 1 with the n-grams
    as a sparse vector and every item's vector copied as it was stored (here each moved off
    what the model makes, which embedding again would undo), and the next ``run`` publishes
    lists equal to a brute-force top-k of them; a second ``migrate`` is refused."""
    settings = make_settings()
    dim, lexical = vector_layout(settings)
    assert lexical > 0  # the hybrid default
    store = EdgeStore(settings.qdrant_path)
    try:
        ensure_collections(store, dim)  # the layout before sparse vectors
    finally:
        store.close()
    items = sample_items(12, seed=4)
    publish(settings, settings.topic_items, created(items))
    _run_until(settings, _lists_exact(settings, Generation.configured(settings)), "the lists")
    store = EdgeStore(settings.qdrant_path)
    try:
        ensure_collections(store, dim, lexical)
        assert store.sparse_width(ITEMS) == 0  # still stored whole
        stored = list(store.scroll(ITEMS, with_vectors=True))
        rng = np.random.default_rng(3)
        before = {}
        for p in stored:  # the model's part moved a little, its length kept
            assert p.vector is not None
            vector = p.vector.copy()
            model_part = vector[: dim - lexical]
            moved = model_part + rng.normal(scale=0.05, size=len(model_part))
            vector[: dim - lexical] = moved * np.linalg.norm(model_part) / np.linalg.norm(moved)
            before[p.key] = vector
        store.upsert(ITEMS, [StoredPoint(p.key, p.payload, before[p.key]) for p in stored])
    finally:
        store.close()

    done = _recstream(settings)
    assert done.returncode == 0, done.stderr
    assert "generation 1 served" in done.stdout
    assert "items copied to the sparse layout as they were" in done.stdout
    store = EdgeStore(settings.qdrant_path)
    try:
        pointer = read_pointer(store)
        assert pointer is not None and pointer.number == 1
        view = GenerationStore(store, pointer)
        ensure_collections(view, dim, lexical)
        assert view.sparse_width(ITEMS) == lexical
        after = {p.key: p.vector for p in view.scroll(ITEMS, with_vectors=True)}
    finally:
        store.close()
    assert after.keys() == before.keys()
    for key, vector in before.items():
        # copied, not embedded again (the store keeps vectors at unit length: float rounding)
        assert np.allclose(after[key], vector, rtol=0, atol=1e-6), key
    _run_until(settings, _lists_exact(settings, pointer), "generation 1's lists")
    again = _recstream(settings)
    assert again.returncode == 2 and "already" in again.stderr


def test_migrate_refuses_items_stored_without_their_text(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A store whose items have no stored text (written before it was kept) cannot be embedded
    again from the store: exit 2, a message saying how to publish the catalogue again, and the
    store still served by generation 0."""
    settings = make_settings()
    items = sample_items(6, seed=2)
    publish(settings, settings.topic_items, created(items))
    _run_until(settings, lambda store: len(final_lists(settings)) == 6, "the lists")
    store = EdgeStore(settings.qdrant_path)
    try:
        ensure_collections(store, *vector_layout(settings))
        old = [
            StoredPoint(p.key, {k: v for k, v in p.payload.items() if k != "text"}, p.vector)
            for p in store.scroll(ITEMS, with_vectors=True)
        ]
        store.upsert(ITEMS, old)
    finally:
        store.close()
    tuned = copy_model(tmp_path / "tuned")
    scale_tensor(tuned, by=0.25)
    refused = _recstream(settings, "--model", str(tuned))
    assert refused.returncode == 2
    assert "6 items" in refused.stderr and "recstream backfill items" in refused.stderr
    store = EdgeStore(settings.qdrant_path)
    try:
        assert read_pointer(store) is None
    finally:
        store.close()


def test_migrate_via_the_admin_api_switches_a_running_embedded_process(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """With the embedded store held by a running ``run catalog`` (RECSTREAM_HTTP_ADMIN on),
    ``recstream migrate --via URL`` (exit 0) builds and switches inside that process while it
    serves: its lists become the new model's; ``--rollback --via`` brings generation 0's
    back."""
    port = free_port()
    settings = make_settings(http_host="127.0.0.1", http_port=port, http_admin=True)
    items = sample_items(12, seed=5)
    publish(settings, settings.topic_items, created(items))
    tuned = copy_model(tmp_path / "tuned")
    scale_tensor(tuned, by=0.25)
    url = f"http://127.0.0.1:{port}"
    store = EdgeStore(settings.qdrant_path)
    stop = threading.Event()
    codes: list[int] = []
    runner = threading.Thread(
        target=lambda: codes.append(run_consumers(settings, "catalog", stop, store)),
        daemon=True,
    )
    runner.start()
    try:
        first = Generation.configured(settings)
        wait_for(lambda: _lists_exact(settings, first)(store), timeout_s=90, what="first lists")
        done = _recstream(settings, "--via", url, "--model", str(tuned))
        assert done.returncode == 0, done.stderr
        assert "generation 1 served" in done.stdout
        pointer = read_pointer(store)
        assert pointer is not None and pointer.number == 1
        wait_for(lambda: _lists_exact(settings, pointer)(store), timeout_s=90, what="new lists")
        back = _recstream(settings, "--via", url, "--rollback")
        assert back.returncode == 0, back.stderr
        wait_for(lambda: _lists_exact(settings, first)(store), timeout_s=90, what="lists back")
    finally:
        stop.set()
        runner.join(60)
        store.close()
    assert codes == [0]


def test_the_admin_routes_exist_only_when_asked_for(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """``migrate --via`` against an API served without RECSTREAM_HTTP_ADMIN: exit 1 with the
    API's answer (not found), nothing built."""
    port = free_port()
    settings = make_settings(http_host="127.0.0.1", http_port=port)
    store = EdgeStore(settings.qdrant_path)
    stop = threading.Event()
    runner = threading.Thread(
        target=lambda: run_consumers(settings, "serve", stop, store), daemon=True
    )
    runner.start()
    try:
        wait_for(lambda: _answers(port), what="the API")
        refused = _recstream(settings, "--via", f"http://127.0.0.1:{port}", "--model", "/x")
        assert refused.returncode == 1 and "not found" in refused.stderr.lower()
        assert read_pointer(store) is None
    finally:
        stop.set()
        runner.join(60)
        store.close()


def _answers(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False
