"""``/v1/admin/migrate`` and ``/v1/admin/rollback`` (``RECSTREAM_HTTP_ADMIN``): a migration run
inside the process that holds the store, for the embedded store, which no second process can
open. The build runs on a thread of its own while the consumers serve; the process follows the
switch as it follows one made from outside (:mod:`stream.generations`). What the last migration
did is kept for the process's life: the API itself is served anew at each switch.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from stream.errors import Refused
from stream.settings import Settings
from stream.store import VectorStore

log = structlog.get_logger(__name__)


class MigrateRequest(BaseModel):
    model: str = Field(description="the new model's directory, as every process here sees it")
    lexical_weight: float | None = Field(default=None, ge=0, lt=1)
    lexical_dim: int | None = Field(default=None, ge=16, le=16_384)


class MigrationState(BaseModel):
    state: str = Field(description="idle, building, switched or failed")
    model: str | None = None
    generation: int | None = None
    items: int | None = None
    shoppers: int | None = None
    seconds: float | None = None
    copied: bool | None = Field(
        default=None,
        description="the items' vectors copied as they were (a move to the sparse layout), "
        "not embedded again",
    )
    error: str | None = None
    progress: dict[str, int] = Field(default_factory=dict)


class _Migrations:
    """The one migration this process runs at a time, and how the last one went."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.state = MigrationState(state="idle")

    def start(self, settings: Settings, store: VectorStore, request: MigrateRequest) -> None:
        with self.lock:
            if self.state.state == "building":
                raise HTTPException(409, f"a migration to {self.state.model} is running")
            self.state = MigrationState(state="building", model=request.model)
        update: dict[str, Any] = {"model": request.model}
        if request.lexical_weight is not None:
            update["lexical_weight"] = request.lexical_weight
        if request.lexical_dim is not None:
            update["lexical_dim"] = request.lexical_dim
        target = settings.model_copy(update=update)
        threading.Thread(
            target=self._run, args=(target, store, settings.model), name="migrate", daemon=True
        ).start()

    def _run(self, settings: Settings, store: VectorStore, served_model: str) -> None:
        from stream.migration.switch import NotVerified, migrate

        def progress(stage: str, n: int) -> None:
            self.state.progress[stage] = n

        started = time.perf_counter()
        try:
            done = migrate(settings, store, served_model, progress)
        except (Refused, NotVerified) as exc:
            self._failed(str(exc))
            return
        except Exception as exc:  # the process goes on serving the generation it served
            log.exception("migrate.failed")
            self._failed(f"{type(exc).__name__}: {exc}"[:500])
            return
        with self.lock:
            self.state = MigrationState(
                state="switched",
                model=done.generation.model,
                generation=done.generation.number,
                items=done.built.items,
                shoppers=done.built.shoppers,
                copied=done.built.copied,
                seconds=round(time.perf_counter() - started, 1),
            )

    def _failed(self, error: str) -> None:
        with self.lock:
            self.state = self.state.model_copy(update={"state": "failed", "error": error})


MIGRATIONS = _Migrations()


def add_admin_routes(app: FastAPI, settings: Settings, store: VectorStore) -> None:
    """The admin routes, on ``store`` (a generation's view: the migration uses the store
    underneath)."""
    raw: VectorStore = getattr(store, "inner", store)

    @app.post("/v1/admin/migrate", status_code=202, response_model=MigrationState, tags=["admin"])
    def start_migration(request: MigrateRequest) -> MigrationState:
        """Start building the generation of another model (202); 409 while one is building."""
        MIGRATIONS.start(settings, raw, request)
        return MIGRATIONS.state

    @app.get("/v1/admin/migration", response_model=MigrationState, tags=["admin"])
    def migration() -> MigrationState:
        """How the last migration this process ran went (idle: none yet)."""
        return MIGRATIONS.state

    @app.post("/v1/admin/rollback", tags=["admin"])
    def roll_back(force: bool = False) -> dict[str, Any]:
        """Serve the generation before again (see ``recstream migrate --rollback``)."""
        from stream.migration.switch import rollback

        try:
            back, owed = rollback(settings, raw, force)
        except Refused as exc:
            raise HTTPException(409, str(exc)) from exc
        return {"generation": back.number, "model": back.model, "lists_owed": owed}
