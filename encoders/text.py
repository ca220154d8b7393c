"""The text recstream embeds for an item, and its content hash. Pure: no torch, no I/O.

The text is made of these parts, in this order, each left out when empty:

1. the title;
2. ``Brand: <brand>``;
3. ``Category: <broad> > ... > <narrow>``;
4. up to 8 attributes, sorted by key, as ``key: value`` joined with ``"; "`` (booleans are
   written ``yes``/``no``, integral numbers without ``.0``);
5. the description, cut to at most 2,000 characters at a word boundary.

Parts are joined with ``". "``, or with a single space after a part that already ends in
``.``, ``!``, ``?`` or ``…``; trailing ``,``, ``;`` and ``:`` are dropped from each part
(unless that would leave it empty). Every
field is NFC-normalised, control and invisible format characters are removed and runs of
whitespace become one space. For example::

    Item(item_id="sku-1", title="Cotton crew-neck T-shirt", brand="Acme",
         categories=["Clothing", "Men", "T-Shirts"], price=12.5,
         attributes={"size": "M", "colour": "red", "organic": True},
         description="Breathable cotton jersey.\\nRelaxed fit.")

becomes::

    Cotton crew-neck T-shirt. Brand: Acme. Category: Clothing > Men > T-Shirts. colour: red;
    organic: yes; size: M. Breathable cotton jersey. Relaxed fit.

(one line). Price, currency, stock and the item id are not part of the text, so an update that
changes only those has the same :func:`content_hash` and need not be re-encoded.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from schemas.catalog import Item

MAX_TEXT_ATTRIBUTES = 8
MAX_TEXT_DESCRIPTION_CHARS = 2_000

# Control characters that str.split() does not already treat as whitespace, plus invisible
# format characters (soft hyphen, zero-width and bidi marks, BOM) that only add noise tokens.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]"
)
_SENTENCE_END = (".", "!", "?", "…")


def clean(text: str) -> str:
    """``text`` NFC-normalised, without control characters, with whitespace collapsed."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFC", text))
    return " ".join(text.split())


def truncate_words(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at a word boundary where there is one."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if text[limit] != " ":
        space = cut.rfind(" ")
        if space > 0:
            cut = cut[:space]
    return cut.rstrip()


def item_text(item: Item) -> str:
    """The text embedded for ``item``; see the module docstring for the format."""
    parts = [
        clean(item.title),
        _labelled("Brand", clean(item.brand or "")),
        _labelled("Category", " > ".join(c for c in map(clean, item.categories) if c)),
        _attributes_text(item.attributes),
        truncate_words(clean(item.description or ""), MAX_TEXT_DESCRIPTION_CHARS),
    ]
    return _join_parts(parts)


def content_hash(text: str) -> str:
    """A stable fingerprint of ``text``: the first 32 hex digits of its SHA-256."""
    # surrogatepass: Items built in Python (not from JSON) may hold lone surrogates.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _labelled(label: str, value: str) -> str:
    return f"{label}: {value}" if value else ""


def _attribute_value(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return clean(str(value))


def _attributes_text(attributes: dict[str, str | int | float | bool]) -> str:
    pairs = ((clean(k), _attribute_value(v)) for k, v in sorted(attributes.items()))
    kept = [f"{k}: {v}" for k, v in pairs if k and v][:MAX_TEXT_ATTRIBUTES]
    return "; ".join(kept)


def _join_parts(parts: list[str]) -> str:
    text = ""
    for part in (p.rstrip(",;: ") or p for p in parts):
        if not part:
            continue
        if text:
            text += " " if text.endswith(_SENTENCE_END) else ". "
        text += part
    return text
