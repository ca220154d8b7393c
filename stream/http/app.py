"""The HTTP API's routes and JSON errors (FastAPI; OpenAPI at ``/openapi.json``, docs at
``/docs``). Every error is ``{"error": code, "message": sentence}``; bad parameters are 422."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

import structlog
from fastapi import FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException

from encoders import EncoderError
from schemas.catalog import MAX_CATEGORY_CHARS, MAX_ID_CHARS, MAX_PRICE
from schemas.outputs import NeighbourList, Recommendations
from stream.http.filters import ItemFilters
from stream.http.metrics import metrics_registry
from stream.http.models import (
    MAX_K,
    ApiError,
    Health,
    Readiness,
    SearchRequest,
    SearchResults,
)
from stream.http.queries import BlankQuery, Queries
from stream.http.readiness import Watched, not_ready
from stream.settings import Settings
from stream.store import StoreUnavailable, VectorStore

log = structlog.get_logger(__name__)

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ApiError, "description": "no such item"},
    422: {"model": ApiError, "description": "invalid parameters"},
    503: {"model": ApiError, "description": "the store (or the encoder) is unavailable"},
}

InStock = Annotated[bool | None, Query(description="only items with this stock flag")]
MinPrice = Annotated[float | None, Query(ge=0, le=MAX_PRICE, description="lowest price")]
MaxPrice = Annotated[float | None, Query(ge=0, le=MAX_PRICE, description="highest price")]
Category = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_CATEGORY_CHARS,
        description="only items with this category at any level of their path",
    ),
]


class InvalidRequest(Exception):
    """Parameters valid one by one that do not go together."""


def build_app(
    settings: Settings,
    store: VectorStore,
    queries: Queries,
    consumers: Sequence[Watched] = (),
    stopping: threading.Event | None = None,
) -> FastAPI:
    """The API of a process with these consumers (none for ``recstream serve``); ``stopping``:
    set when the process is told to stop (it is not ready from then on)."""
    app = FastAPI(
        title="recstream",
        summary="Similar items, recommendations and text search from recstream's store; "
        "health, readiness and metrics of the process.",
        version="1",
    )
    registry, request_seconds = metrics_registry(consumers)
    _handle_errors(app)

    @app.middleware("http")
    async def timed(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Any:
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:
            log.exception("http.failed", method=request.method, path=request.url.path)
            response = _error(500, "internal", "an internal error: see the process's log")
        route = request.scope.get("route")
        request_seconds.labels(
            getattr(route, "path", "other"), request.method, str(response.status_code)
        ).observe(time.perf_counter() - started)
        return response

    @app.get("/healthz", response_model=Health, tags=["operations"])
    def healthz() -> Health:
        """200 while the process works."""
        return Health()

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "not ready, and why"}},
        tags=["operations"],
    )
    def readyz() -> Any:
        """200 once every consumer of the process has joined its group, none is retrying a
        failing batch, and the store answers; 503 with the reason otherwise (and once the
        process is stopping)."""
        reason = not_ready(consumers, store, stopping)
        if reason is None:
            return Readiness(ready=True)
        return JSONResponse(Readiness(ready=False, reason=reason).model_dump(), status_code=503)

    @app.get("/metrics", response_class=Response, tags=["operations"])
    def metrics() -> Response:
        """Prometheus text format."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/v1/items/{item_id:path}/similar",
        response_model=NeighbourList,
        responses=_ERRORS,
        tags=["queries"],
    )
    def similar(
        item_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)],
        k: Annotated[
            int | None, Query(ge=1, le=MAX_K, description="[RECSTREAM_NEIGHBOURS_K]")
        ] = None,
        in_stock: InStock = None,
        min_price: MinPrice = None,
        max_price: MaxPrice = None,
        category: Category = None,
    ) -> NeighbourList:
        """The item's most similar items (cosine of the stored vectors, exact), best first,
        the filters applied; without filters, the list ``items.neighbours`` holds for it."""
        filters = _filters(in_stock, min_price, max_price, category)
        found = queries.similar(item_id, k or settings.neighbours_k, filters)
        if found is None:
            raise HTTPException(404, f"no item {item_id!r}: unknown or deleted")
        return found

    @app.get(
        "/v1/users/{user_id:path}/recommendations",
        response_model=Recommendations,
        responses=_ERRORS,
        tags=["queries"],
    )
    def recommendations(
        user_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)],
        n: Annotated[
            int | None,
            Query(ge=1, description="at most RECSTREAM_RECOMMENDATIONS_N [that setting]"),
        ] = None,
    ) -> Recommendations:
        """The shopper's recommendations computed now from their stored history, as the
        behaviour consumer publishes them; a shopper without history gets an empty list."""
        most = settings.recommendations_n
        if n is not None and n > most:
            raise InvalidRequest(f"n ({n}) is more than RECSTREAM_RECOMMENDATIONS_N ({most})")
        return queries.recommendations(user_id, n or most)

    @app.post("/v1/search", response_model=SearchResults, responses=_ERRORS, tags=["queries"])
    def search(body: SearchRequest) -> SearchResults:
        """The items whose texts are nearest the query (encoded like an item's text), best
        first, the filters applied."""
        filters = _filters(body.in_stock, body.min_price, body.max_price, body.category)
        return queries.search(body.query, body.k, filters)

    if settings.http_admin:
        from stream.http.admin import add_admin_routes

        add_admin_routes(app, settings, store)
    return app


def _filters(
    in_stock: bool | None, min_price: float | None, max_price: float | None, category: str | None
) -> ItemFilters:
    if min_price is not None and max_price is not None and min_price > max_price:
        raise InvalidRequest(f"min_price ({min_price:g}) is above max_price ({max_price:g})")
    category = category.strip() if category is not None else None
    return ItemFilters(in_stock, min_price, max_price, category or None)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(ApiError(error=code, message=message).model_dump(), status_code=status)


def _handle_errors(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else f"http_{exc.status_code}"
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return _error(422, "invalid_request", "; ".join(parts))

    @app.exception_handler(InvalidRequest)
    async def inconsistent(request: Request, exc: InvalidRequest) -> JSONResponse:
        return _error(422, "invalid_request", str(exc))

    @app.exception_handler(BlankQuery)
    async def blank(request: Request, exc: BlankQuery) -> JSONResponse:
        return _error(422, "invalid_request", str(exc))

    @app.exception_handler(StoreUnavailable)
    async def store_down(request: Request, exc: StoreUnavailable) -> JSONResponse:
        log.warning("http.store_unavailable", error=str(exc)[:300])
        return _error(503, "store_unavailable", "the vector store does not answer: try again")

    @app.exception_handler(EncoderError)
    async def encoder_failed(request: Request, exc: EncoderError) -> JSONResponse:
        log.warning("http.encoder_unavailable", error=str(exc)[:300])
        return _error(503, "encoder_unavailable", "the text encoder could not be loaded")
