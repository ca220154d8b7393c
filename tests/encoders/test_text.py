"""The text embedded for an item (encoders.text) and its content hash."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from encoders.text import (
    MAX_TEXT_ATTRIBUTES,
    MAX_TEXT_DESCRIPTION_CHARS,
    clean,
    content_hash,
    item_text,
    truncate_words,
)
from schemas import Item


def item(**fields: Any) -> Item:
    """An item with id sku-1 and a title, updated by ``fields``."""
    return Item.model_validate({"item_id": "sku-1", "title": "Cotton crew-neck T-shirt", **fields})


FULL = item(
    description="Breathable cotton jersey.\nRelaxed fit.",
    brand="Acme",
    categories=["Clothing", "Men", "T-Shirts"],
    price=12.5,
    currency="EUR",
    in_stock=True,
    attributes={"size": "M", "colour": "red", "organic": True, "weight_g": 180.0},
)


def test_full_item_text() -> None:
    """A full item gives title, brand, category path, sorted attributes and description."""
    assert item_text(FULL) == (
        "Cotton crew-neck T-shirt. Brand: Acme. Category: Clothing > Men > T-Shirts. "
        "colour: red; organic: yes; size: M; weight_g: 180. "
        "Breathable cotton jersey. Relaxed fit."
    )


def test_module_docstring_example_is_true() -> None:
    """The example quoted in the module docstring (and the README) is what the code produces."""
    example = item(
        brand="Acme",
        categories=["Clothing", "Men", "T-Shirts"],
        price=12.5,
        attributes={"size": "M", "colour": "red", "organic": True},
        description="Breathable cotton jersey.\nRelaxed fit.",
    )
    assert item_text(example) == (
        "Cotton crew-neck T-shirt. Brand: Acme. Category: Clothing > Men > T-Shirts. colour: red; "
        "organic: yes; size: M. Breathable cotton jersey. Relaxed fit."
    )


def test_title_only() -> None:
    """An item with only a title is embedded as just the title."""
    assert item_text(item()) == "Cotton crew-neck T-shirt"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"brand": "Acme"}, "Cotton crew-neck T-shirt. Brand: Acme"),
        ({"categories": ["Clothing"]}, "Cotton crew-neck T-shirt. Category: Clothing"),
        ({"attributes": {"colour": "red"}}, "Cotton crew-neck T-shirt. colour: red"),
        ({"description": "Soft."}, "Cotton crew-neck T-shirt. Soft."),
        ({"brand": "Acme", "description": "Soft."}, "Cotton crew-neck T-shirt. Brand: Acme. Soft."),
    ],
)
def test_missing_optional_fields_are_left_out(fields: dict[str, Any], expected: str) -> None:
    """Absent optional fields leave no label, separator or placeholder behind."""
    assert item_text(item(**fields)) == expected


def test_attribute_order_and_cap() -> None:
    """Attributes are sorted by key and at most 8 are kept, the first 8 keys in order."""
    attributes = {f"k{i:02d}": f"v{i}" for i in reversed(range(MAX_TEXT_ATTRIBUTES + 4))}
    text = item_text(item(attributes=attributes))
    expected = "; ".join(f"k{i:02d}: v{i}" for i in range(MAX_TEXT_ATTRIBUTES))
    assert text == f"Cotton crew-neck T-shirt. {expected}"


def test_attribute_value_formatting() -> None:
    """Booleans read yes/no, integral floats lose .0, other numbers keep their digits."""
    attributes = {"a": False, "b": 2.0, "c": 2.5, "d": -7, "e": 1e20}
    text = item_text(item(title="T", attributes=attributes))
    assert text == "T. a: no; b: 2; c: 2.5; d: -7; e: 1e+20"


def test_blank_attribute_values_are_skipped() -> None:
    """An attribute whose value is blank adds nothing and does not use up the cap."""
    assert item_text(item(title="T", attributes={"a": " ", "b": "x"})) == "T. b: x"


def test_description_truncated_at_word_boundary() -> None:
    """A long description is cut to at most 2000 characters, between words."""
    words = " ".join(["word"] * 1000)  # 4999 characters
    text = item_text(item(title="T", description=words))
    description = text.removeprefix("T. ")
    assert len(description) <= MAX_TEXT_DESCRIPTION_CHARS
    assert description.endswith("word")
    assert set(description.split(" ")) == {"word"}
    assert len(description) > MAX_TEXT_DESCRIPTION_CHARS - 5


def test_truncate_words() -> None:
    """truncate_words keeps short text, cuts between words, and hard-cuts one giant word."""
    assert truncate_words("short", 10) == "short"
    assert truncate_words("alpha beta gamma", 12) == "alpha beta"
    assert truncate_words("alpha beta gamma", 10) == "alpha beta"
    assert truncate_words("alpha beta gamma", 11) == "alpha beta"
    assert truncate_words("x" * 30, 10) == "x" * 10


def test_whitespace_and_control_characters() -> None:
    """Whitespace runs become one space; control and invisible characters disappear."""
    messy = item(
        title="  Cotton\t\tcrew-neck\u00a0 T-shirt\x00 ",
        brand="Ac\u200bme\x07",
        categories=["Clothing\n", "Men\r\n"],
        description="Line one\n\n\nline\x1ftwo\x7f\ufeff",
    )
    assert item_text(messy) == (
        "Cotton crew-neck T-shirt. Brand: Acme. Category: Clothing > Men. Line one line two"
    )


def test_clean_removes_every_non_whitespace_c0_c1_control() -> None:
    """No C0/C1 control character survives clean(); whitespace controls become spaces."""
    controls = "".join(chr(i) for i in (*range(0x20), *range(0x7F, 0xA0)))
    assert clean(f"a{controls}b") == "a b"


def test_unicode_is_nfc_normalised() -> None:
    """Composed and decomposed accents give the same text (and hash)."""
    composed = item(title="Caf\u00e9")
    decomposed = item(title="Cafe\u0301")
    assert item_text(composed) == item_text(decomposed) == "Caf\u00e9"


def test_no_doubled_punctuation() -> None:
    """Parts ending in . ! ? get a space, not another period; trailing , ; : are dropped."""
    assert item_text(item(title="Best tee!", brand="Acme.", description="Soft")) == (
        "Best tee! Brand: Acme. Soft"
    )
    assert item_text(item(title="Tee:", brand="Acme,", description="Soft...")) == (
        "Tee. Brand: Acme. Soft..."
    )
    assert item_text(item(title=":")) == ":"  # never stripped to nothing


def test_content_hash_is_stable_and_sensitive() -> None:
    """The hash is 32 hex digits, equal for equal text and different when the text changes."""
    text = item_text(FULL)
    digest = content_hash(text)
    assert len(digest) == 32
    int(digest, 16)
    assert content_hash(item_text(FULL.model_copy())) == digest
    assert content_hash(text + " ") != digest
    assert content_hash(item_text(item(title="Other"))) != content_hash(item_text(item()))


def test_content_hash_known_value() -> None:
    """The hash is the SHA-256 of the UTF-8 text, so it is stable across releases."""
    assert content_hash("") == "e3b0c44298fc1c149afbf4c8996fb924"


def test_price_stock_and_currency_do_not_change_the_text() -> None:
    """A price-, currency- or stock-only update keeps text and hash, so it is not re-encoded."""
    changed = FULL.model_copy(update={"price": 99.0, "currency": "USD", "in_stock": False})
    assert item_text(changed) == item_text(FULL)
    assert content_hash(item_text(changed)) == content_hash(item_text(FULL))


def test_content_changes_do_change_the_text() -> None:
    """Changing any embedded field changes the text."""
    base = item_text(FULL)
    for update in (
        {"title": "Linen shirt"},
        {"brand": "Other"},
        {"categories": ["Clothing"]},
        {"attributes": {"colour": "blue"}},
        {"description": "Different."},
    ):
        assert item_text(FULL.model_copy(update=update)) != base


texts = st.text(st.characters(codec="utf-8"), max_size=60)


@settings(max_examples=200)
@given(
    title=texts.filter(str.strip),
    brand=st.none() | texts,
    categories=st.lists(texts.filter(str.strip), max_size=4),
    attributes=st.dictionaries(
        texts.filter(str.strip),
        texts | st.booleans() | st.integers(-(2**63), 2**63 - 1),
        max_size=10,
    ),
    description=st.none() | texts,
)
def test_any_item_gives_clean_text(
    title: str,
    brand: str | None,
    categories: list[str],
    attributes: dict[str, str | int | bool],
    description: str | None,
) -> None:
    """For any valid item the text is non-empty, single-spaced, trimmed and control-free."""
    try:
        valid = item(
            title=title,
            brand=brand,
            categories=categories,
            attributes=attributes,
            description=description,
        )
    except ValidationError:
        reject()  # e.g. an invisible title: the schema's job, tested in test_schemas
    text = item_text(valid)
    assert text
    assert text == text.strip()
    assert "  " not in text
    assert not any(ch.isspace() and ch != " " for ch in text)
    assert not any(unicodedata.category(ch) == "Cc" for ch in text)
    assert len(content_hash(text)) == 32
