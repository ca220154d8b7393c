"""Request and response bodies of the HTTP API that are not messages of the topics (the similar
items and recommendations endpoints answer with the messages' own models)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.catalog import MAX_CATEGORY_CHARS, MAX_PRICE, MAX_TITLE_CHARS

MAX_K = 1_000


class SearchRequest(BaseModel):
    """A text search: the query is encoded like an item's text and compared with every item."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    query: str = Field(min_length=1, max_length=MAX_TITLE_CHARS, examples=["red running shoes"])
    k: int = Field(default=10, ge=1, le=MAX_K, description="how many items")
    in_stock: bool | None = Field(default=None, description="only items with this stock flag")
    min_price: float | None = Field(default=None, ge=0, le=MAX_PRICE)
    max_price: float | None = Field(default=None, ge=0, le=MAX_PRICE)
    category: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CATEGORY_CHARS,
        description="only items with this category at any level of their path",
    )


class FoundItem(BaseModel):
    item_id: str
    score: float = Field(description="cosine similarity of the query and the item's text")
    title: str | None


class SearchResults(BaseModel):
    items: list[FoundItem]


class Readiness(BaseModel):
    ready: bool
    reason: str | None = None


class Health(BaseModel):
    status: str = "ok"


class ApiError(BaseModel):
    """Every error: a short code and a sentence a person understands."""

    error: str
    message: str
