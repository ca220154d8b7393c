"""BERT tokenising of plain ASCII texts in Python, with a cache of words already split.

Product texts repeat their words: brands, units, category names. The Rust tokenizer normalises,
splits and looks up every word of every text again, and on a GPU that is the slowest part of
encoding. On plain ASCII, BERT's normaliser only lowercases, its pre-tokenizer splits into runs
of letters and digits and single punctuation characters, and WordPiece depends on the word
alone; so a regular expression and a dict of word -> ids give the same ids several times faster
once the common words are cached (bench/README.md; the ids are checked against transformers' in
the unit tests). Anything else (non-ASCII text, control characters, another tokenizer design)
goes to the Rust tokenizer.
"""

from __future__ import annotations

import re
from typing import Any

_CACHE_WORDS = 500_000
"""Words remembered before the cache starts over (a few tens of MB)."""
# ASCII control characters BERT's normaliser deletes (tab, newline and return it keeps as spaces)
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class AsciiWordPiece:
    """``texts -> ids`` for the texts it :meth:`accepts`, as the Rust tokenizer ``backend``
    gives them."""

    def __init__(self, backend: Any, lowercase: bool, prefix: list[int], suffix: list[int]):
        self._model = backend.model
        self._lowercase = lowercase
        self._prefix, self._suffix = prefix, suffix
        self._content = backend.truncation["max_length"] - len(prefix) - len(suffix)
        self._words = re.compile(
            r"[a-z0-9]+|[^a-z0-9\s]" if lowercase else r"[A-Za-z0-9]+|[^A-Za-z0-9\s]"
        )
        self._cache: dict[str, list[int]] = {}
        # special tokens ([SEP], ...) written in a text are matched before normalising
        added = [t.content for t in backend.get_added_tokens_decoder().values()]
        self._added = re.compile("|".join(map(re.escape, added)), re.IGNORECASE) if added else None

    def accepts(self, text: str) -> bool:
        """Whether ``text`` can take this path: ASCII, no control characters, no special token."""
        return (
            text.isascii()
            and _ASCII_CONTROL.search(text) is None
            and (self._added is None or self._added.search(text) is None)
        )

    @classmethod
    def fit(cls, backend: Any) -> AsciiWordPiece | None:
        """The fast path for ``backend`` (truncation set, no padding), or None where it is not
        a BERT normaliser + pre-tokenizer + WordPiece with special tokens only around the text."""
        kinds = (type(backend.normalizer), type(backend.pre_tokenizer), type(backend.model))
        names = tuple(kind.__name__ for kind in kinds)
        if names != ("BertNormalizer", "BertPreTokenizer", "WordPiece") or not backend.truncation:
            return None
        if backend.truncation.get("direction", "right") != "right":
            return None
        # added tokens matched after normalising (user vocabulary, "normalized=True") would
        # need the normaliser's rules here; only raw-text special tokens are handled
        if any(t.normalized for t in backend.get_added_tokens_decoder().values()):
            return None
        around = backend.encode("").ids
        one = backend.encode("a").ids
        word = backend.model.token_to_id("a")
        if word is None or len(one) != len(around) + 1:
            return None
        cut = one.index(word)
        prefix, suffix = one[:cut], one[cut + 1 :]
        if prefix + suffix != around:
            return None
        return cls(backend, bool(backend.normalizer.lowercase), prefix, suffix)

    def __call__(self, texts: list[str]) -> list[list[int]]:
        cache, words, content = self._cache, self._words, self._content
        out = []
        for text in texts:
            if len(cache) > _CACHE_WORDS:
                cache.clear()
            ids = list(self._prefix)
            for word in words.findall(text.lower() if self._lowercase else text):
                pieces = cache.get(word)
                if pieces is None:
                    pieces = cache[word] = [token.id for token in self._model.tokenize(word)]
                ids += pieces
            del ids[len(self._prefix) + content :]
            ids += self._suffix
            out.append(ids)
        return out
