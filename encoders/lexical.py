"""Lexical vectors: an item text's character n-grams, hashed into a fixed number of dimensions.

Model numbers, sizes and brands are lexical facts that a sentence encoder blurs (the packaged
model puts "Sony BRAVIA KDL-46W5100" closer to "Sony BRAVIA KDL-40V4100" than the same TV
written "KDL40V4100": ``tests/encoders/test_hybrid.py``). The character 3- to 5-grams of a
text's words catch them:

- every run of characters that are neither letters nor digits becomes a space ("KDL-40V4100"
  is "KDL 40V4100", "L." is "L"), the first :data:`MAX_CHARS` characters are kept, lower-cased
  and split into words; each word is padded with one space on either side and its 3-, 4- and
  5-grams are taken inside it (never across two words), as scikit-learn's ``char_wb`` analyzer
  does;
- a gram that appears ``c`` times weighs ``1 + ln c`` (sublinear term frequency), and
  :data:`DIGIT_WEIGHT` times that when it holds a digit: digits carry model numbers, sizes and
  capacities, the facts that tell two products of one line apart;
- each gram is hashed (64 bits, stable across processes and machines) to one of ``dim``
  dimensions and a sign (signed feature hashing keeps inner products unbiased), and the row is
  L2-normalised.

No corpus statistics are needed (no IDF): a text's vector depends on that text alone, so items
embedded a year apart, or by different instances, compare exactly as if embedded together. The
digit weight stands in for what an IDF would learn about product catalogues. It, the
punctuation rule and the cut were chosen on the Abt-Buy training pairs (bench/README.md,
"Neighbour quality").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

GRAM_SIZES = (3, 4, 5)
DIGIT_WEIGHT = 3.0
MAX_CHARS = 150
"""Only a text's first characters count: the title, brand and category come first
(:func:`encoders.text.item_text`), the facts that name a product; the description is left to
the model. It also keeps a search query (a title) and a product's text of like length: a size
letter or a model number then weighs as much in either."""
_NOT_WORD = re.compile(r"[^\w]+|_+")

_SPACE = ord(" ")
_SEPARATOR = 0  # between texts: no gram spans two texts (and no text holds NUL once cleaned)
_MIX_1 = np.uint64(0xFF51AFD7ED558CCD)
_MIX_2 = np.uint64(0xC4CEB9FE1A85EC53)
_BASE = np.uint64(0x100000001B3)


def lexical_vectors(texts: Sequence[str], dim: int) -> npt.NDArray[np.float32]:
    """``(len(texts), dim)`` float32 rows, L2-normalised (all zero for a text without a word)."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    if not texts:
        return out
    codes, owner = _codepoints(texts)
    digit = (codes >= ord("0")) & (codes <= ord("9"))
    inner = codes != _SPACE
    real = codes != _SEPARATOR
    rows: list[npt.NDArray[np.intp]] = []
    keys: list[npt.NDArray[np.uint64]] = []
    digits: list[npt.NDArray[np.bool_]] = []
    for size in GRAM_SIZES:
        if len(codes) < size:
            continue
        starts = np.arange(len(codes) - size + 1)
        # inside one padded word: no separator anywhere, no space but at the two ends
        valid = np.ones(len(starts), dtype=bool)
        for at in range(size):
            valid &= real[starts + at]
            if 0 < at < size - 1:
                valid &= inner[starts + at]
        starts = starts[valid]
        key = np.full(len(starts), np.uint64(size), dtype=np.uint64)
        has_digit = np.zeros(len(starts), dtype=bool)
        with np.errstate(over="ignore"):
            for at in range(size):
                key = key * _BASE + codes[starts + at]
                has_digit |= digit[starts + at]
        rows.append(owner[starts])
        keys.append(_mix(key))
        digits.append(has_digit)
    if not rows:
        return out
    row = np.concatenate(rows)
    key = np.concatenate(keys)
    has_digit = np.concatenate(digits)
    # count each (text, gram) once: sort by text then gram, and weigh the runs
    order = np.lexsort((key, row))
    row, key, has_digit = row[order], key[order], has_digit[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = (key[1:] != key[:-1]) | (row[1:] != row[:-1])
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, len(key)))
    weight = 1.0 + np.log(counts)
    weight *= np.where(has_digit[starts], DIGIT_WEIGHT, 1.0)
    gram = key[starts]
    sign = np.where((gram >> np.uint64(63)) == 1, -1.0, 1.0)
    column = (gram % np.uint64(dim)).astype(np.intp)
    np.add.at(out, (row[starts], column), (weight * sign).astype(np.float32))
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def _codepoints(texts: Sequence[str]) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.intp]]:
    """The texts' padded words as one array of code points, a separator after each text, and
    the text each position belongs to."""
    parts: list[str] = []
    lengths: list[int] = []
    for text in texts:
        words = _NOT_WORD.sub(" ", text)[:MAX_CHARS].lower().split()
        padded = "".join(f" {w} " for w in words) + "\0"
        parts.append(padded)
        lengths.append(len(padded))
    joined = "".join(parts)
    # little-endian whatever the machine; a lone surrogate (which no catalogue event holds, but
    # a query may) is its own code point
    raw = joined.encode("utf-32-le", "surrogatepass")
    codes = np.frombuffer(raw, dtype="<u4").astype(np.uint64)
    owner = np.repeat(np.arange(len(texts), dtype=np.intp), lengths)
    return codes, owner


def _mix(key: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """MurmurHash3's 64-bit finaliser: every input bit moves every output bit."""
    with np.errstate(over="ignore"):
        key = key ^ (key >> np.uint64(33))
        key = key * _MIX_1
        key = key ^ (key >> np.uint64(33))
        key = key * _MIX_2
        return key ^ (key >> np.uint64(33))
