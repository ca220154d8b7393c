"""Running the production consumers of ``recstream run catalog|behaviour|all`` in one process.

``behaviour`` is two consumers: the behaviour consumer (``user.events``) and the item-stats
consumer (the internal activity topic). Each runs its own loop in a thread; they share one
vector store (the embedded store may be opened by one process only) and, for ``all``, the
encoder. A process that encodes first checks that the store's vectors come from its model
(:mod:`stream.store.model_record`). If one consumer fails, the others are stopped and the
process exits 1. Unless ``http_port`` is 0, the HTTP API (:mod:`stream.http`) is served beside
them, on a thread of its own, from the same store, and stopped with them.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import structlog

from encoders import Encoder
from stream.loop import BatchConsumer
from stream.settings import Settings
from stream.store import VectorStore, open_store

if TYPE_CHECKING:
    from stream.generations import Generation, GenerationStore
    from stream.http.server import HttpServer

log = structlog.get_logger(__name__)


def build_consumers(
    settings: Settings, which: str, store: VectorStore, encoder: Encoder | None = None
) -> list[BatchConsumer[Any, Any]]:
    """The consumers ``which`` names (catalog, behaviour or all), wired to ``store``, in that
    order: catalog (and lists, with RECSTREAM_LIST_STAGE=topic), behaviour, item stats. The
    catalog consumer loads the settings' encoder unless one is given."""

    consumers: list[BatchConsumer[Any, Any]] = []
    if which in ("catalog", "all"):
        from encoders import load_encoder
        from stream.catalog.processor import CatalogConsumer, CatalogProcessor
        from stream.catalog.state import CatalogState

        encoder = encoder or load_encoder(settings)
        processor = CatalogProcessor(settings, encoder, store, CatalogState())
        consumers.append(CatalogConsumer(settings, processor))
        if processor.by_topic:  # each list's one writer, beside the catalog consumer
            from stream.catalog.owners import ListConsumer, ListProcessor

            consumers.append(ListConsumer(settings, ListProcessor(settings, store)))
    if which in ("behaviour", "all"):
        from encoders.hybrid import vector_layout
        from stream.behaviour.item_stats import ItemStatsConsumer, ItemStatsProcessor
        from stream.behaviour.processor import BehaviourConsumer, BehaviourProcessor

        dim, lexical = vector_layout(settings)
        behaviour = BehaviourProcessor(settings, store, dim, lexical)
        stats = ItemStatsProcessor(settings, store, dim, lexical)
        consumers.append(BehaviourConsumer(settings, behaviour))
        consumers.append(ItemStatsConsumer(settings, stats))
    return consumers


def check_store_model(settings: Settings, store: VectorStore) -> None:
    """Record the settings' model for the items' vectors, or raise
    :class:`~stream.store.model_record.ModelChanged` when the store holds another model's.
    Through a :class:`~stream.generations.GenerationStore`, that generation's items."""
    from encoders.hybrid import vector_fingerprint, vector_layout
    from stream.collections import ITEMS, ensure_collections
    from stream.generations import GenerationStore
    from stream.store.model_record import ModelRecord, check_model

    dim, lexical = vector_layout(settings)
    ensure_collections(store, dim, lexical)
    name, digest = vector_fingerprint(settings)
    items = store.generation.collection(ITEMS) if isinstance(store, GenerationStore) else ITEMS
    check_model(store, items, ModelRecord(name, digest, dim))


def adopt_catalog_records(settings: Settings, store: VectorStore) -> None:
    """With store search, move the list records a memory-search consumer left on this store
    into the items' payloads (:func:`stream.catalog.neighbours.adopt_records`): one migration
    step at start-up, before any catalog consumer reads a record."""
    from encoders.hybrid import vector_layout
    from stream.catalog.neighbours import adopt_records
    from stream.collections import ITEMS, ensure_collections

    ensure_collections(store, *vector_layout(settings))
    adopt_records(store, settings, ITEMS)


def run_consumers(
    settings: Settings, which: str, stop: threading.Event, store: VectorStore | None = None
) -> int:
    """Run until ``stop`` is set (exit code 0) or a consumer fails (exit code 1), on the
    generation the store's pointer names. When ``recstream migrate`` switches it, the new
    generation's encoder and consumers are made ready while the old ones run, then the old ones
    finish their batches, the API serves the new generation on the same socket and the new
    consumers start. Raises
    :class:`stream.http.server.HttpUnavailable`, before anything is loaded, when the HTTP API
    cannot listen where the settings say. ``store``: an open store to use (left open) instead
    of the settings' (the embedded store has one process: a migration beside the consumers
    needs the same object)."""
    from stream.generations import PointerWatch, served
    from stream.http.server import HttpServer

    http = None
    if settings.http_port:
        http = HttpServer(settings.http_host, settings.http_port)
        http.bind()
    given = store is not None
    try:
        store = store if store is not None else open_store(settings)
    except BaseException:
        if http is not None:
            http.stop()
        raise
    try:
        running = _Generation.prepare(settings, which, served(store, settings), store)
        while True:
            running.start(http, stop)
            watch = PointerWatch(store, running.generation.number, settings.generation_check_s)
            switched = watch.wait_for_switch(stop)
            if switched is None:
                return running.finish()
            log.info("generation.switching", old=running.generation.number, new=switched.number)
            # the new generation's model and consumers are made ready while the old ones serve
            try:
                following = _Generation.prepare(settings, which, switched, store)
            except BaseException:  # its model cannot load here, say: stop, with the reason
                running.finish()
                raise
            if running.finish():
                return 1
            running = following
    finally:
        if http is not None:
            http.stop()
        if not given:
            store.close()


class _Generation:
    """The consumers (and the encoder) of one generation, made ready, then run until halted."""

    def __init__(
        self,
        generation: Generation,
        settings: Settings,
        view: GenerationStore,
        consumers: list[BatchConsumer[Any, Any]],
        encoder: Encoder | None,
    ) -> None:
        self.generation = generation
        self.settings = settings
        self.view = view
        self.consumers = consumers
        self.encoder = encoder
        self.halt = threading.Event()
        self.failed: list[BaseException] = []
        self._threads: list[threading.Thread] = []

    @classmethod
    def prepare(
        cls, base: Settings, which: str, generation: Generation, store: VectorStore
    ) -> _Generation:
        """Check the generation's model record, load its encoder and build its consumers."""
        from stream.generations import GenerationStore

        settings = generation.settings(base)
        view = GenerationStore(store, generation)
        if generation.number:
            log.info(
                "generation.serving",
                generation=generation.number,
                model=generation.model,
                configured_model=base.model,
            )
        encoder = None
        # every consumer reads the items' vectors (behaviour: profiles and the HTTP search)
        check_store_model(settings, view)
        if which in ("catalog", "all"):
            from encoders import load_encoder

            adopt_catalog_records(settings, view)
            encoder = load_encoder(settings)
        consumers = build_consumers(settings, which, view, encoder)
        for consumer in consumers:
            consumer.superseded = view.superseded
        return cls(generation, settings, view, consumers, encoder)

    def start(self, http: HttpServer | None, stop: threading.Event) -> None:
        """Serve the API from this generation (in place of the one before, on the same socket)
        and start the consumers, each on a thread of its own."""
        from stream.http.server import api_server

        def guarded(consumer: BatchConsumer[Any, Any]) -> None:
            try:
                consumer.run(self.halt)
            except BaseException as exc:
                log.exception("consumer.failed", topic=consumer.topic)
                self.failed.append(exc)
                stop.set()
                self.halt.set()

        if http is not None:
            api_server(
                self.settings, self.view, self.consumers, self.encoder, server=http, stopping=stop
            )
        self._threads = [
            threading.Thread(target=guarded, args=(c,), name=c.topic, daemon=True)
            for c in self.consumers
        ]
        for t in self._threads:
            t.start()

    def finish(self) -> int:
        """Halt the consumers (each finishes its batches) and wait for them: 1 if one failed."""
        self.halt.set()
        for t in self._threads:
            t.join()
        return 1 if self.failed else 0
