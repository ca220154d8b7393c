"""``recstream eval neighbours``: how good the similar-item lists are, on data with an answer.

- Abt-Buy twin recall@k: for each Abt product of the test split
  (:func:`~recstream_tools.evaluation.catalogues.split_pairs`), is one of its true Buy twins among
  the k Buy products most similar to it? Every Buy product is a candidate.
- Flipkart category precision@k: for each item of a catalogue whose tree names a category, the
  share of its k most similar other items with the same leaf category
  (:func:`~recstream_tools.evaluation.catalogues.leaf_category`).
- Online Retail co-purchases: for each item bought with others after a cutoff, are they among
  its k most similar items (:mod:`~recstream_tools.evaluation.copurchase`)?

Every method reads the text the consumers embed (:func:`encoders.text.item_text`):

- ``tfidf_words``, ``tfidf_char``: TF-IDF over words and over character 3-5-grams (within word
  boundaries), sublinear term frequencies, fitted on the texts being compared, cosine;
- ``dense``: the configured encoder (``RECSTREAM_MODEL`` and the encoder settings), searched
  exactly by the catalog consumer's own search (:func:`stream.catalog.search.search`);
- ``fusion``: a fixed ``0.5 x dense + 0.5 x tfidf_char`` cosine, as a reference for hybrids;
- ``recstream``: the similarity the consumers list by: the dense encoder fused with hashed
  character n-grams (:mod:`encoders.hybrid`, ``RECSTREAM_LEXICAL_WEIGHT``), searched exactly by
  the catalog consumer's own search. Left out when the lexical weight is 0 (it is ``dense``).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from encoders import Encoder
from encoders.hybrid import HybridEncoder, dense_part
from encoders.text import item_text
from recstream_tools.evaluation.catalogues import (
    AbtBuy,
    Catalogue,
    load_abt_buy,
    load_flipkart,
    split_pairs,
    twins,
)
from schemas.catalog import Item

log = structlog.get_logger(__name__)

RESULT_NAME = "neighbours"
METHODS = ("tfidf_words", "tfidf_char", "dense", "fusion", "recstream")
METHOD_TITLES = {
    "tfidf_words": "TF-IDF, words",
    "tfidf_char": "TF-IDF, character 3-5-grams",
    "dense": "dense encoder",
    "fusion": "fixed 0.5 dense + 0.5 character TF-IDF",
    "recstream": "recstream (dense + character n-grams)",
}
RECALL_AT = (1, 5, 10)
PRECISION_AT = 10
FUSION_DENSE_WEIGHT = 0.5
CO_PURCHASE_CUTOFF = datetime(2011, 10, 1, tzinfo=UTC)
"""The cutoff of ``recstream eval recommendations``: the same test period."""

Scores = npt.NDArray[np.float32]
Rows = npt.NDArray[np.intp]


def twin_recall(ranked: Sequence[Sequence[int]], truth: Sequence[set[int]], k: int) -> float:
    """The share of queries with one of their true rows in their top ``k``."""
    if not truth:
        return 0.0
    hits = sum(1 for rows, true in zip(ranked, truth, strict=True) if true & set(rows[:k]))
    return hits / len(truth)


def category_precision(
    ranked: Sequence[Sequence[int]], query_labels: Sequence[str], labels: Sequence[str], k: int
) -> float:
    """The mean over queries of the share of its top ``k`` rows whose label is the query's."""
    if not query_labels:
        return 0.0
    shares = [
        sum(1 for row in rows[:k] if labels[row] == label) / k
        for rows, label in zip(ranked, query_labels, strict=True)
    ]
    return float(np.mean(shares))


def top_rows(scores: Scores, k: int, own: Rows | None = None) -> list[list[int]]:
    """Each query row's ``k`` best columns, best first (ties: the lower column); ``own[q]`` is a
    column query q never gets (its own item; -1: none)."""
    scores = scores.astype(np.float64, copy=True)
    if own is not None:
        at = np.flatnonzero(own >= 0)
        scores[at, own[at]] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [row.tolist() for row in order]


def tfidf_scores(queries: Sequence[str], corpus: Sequence[str], analyzer: str) -> Scores:
    """Cosine of TF-IDF vectors fitted on both sides, ``(len(queries), len(corpus))``."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if analyzer == "char":
        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)
    else:
        vectorizer = TfidfVectorizer(analyzer="word", sublinear_tf=True)
    matrix = vectorizer.fit_transform([*queries, *corpus])
    product = matrix[: len(queries)] @ matrix[len(queries) :].T
    return np.asarray(product.toarray(), dtype=np.float32)


def dense_top_rows(query_vectors: Scores, corpus_vectors: Scores, k: int, own: Rows) -> list[Rows]:
    """Each query's top ``k`` corpus rows by the catalog consumer's exact search."""
    from stream.catalog.search import search

    floors = np.zeros(len(corpus_vectors), dtype=np.float64)
    found = search(corpus_vectors, floors, query_vectors, own, k, no_entry=None)
    return found.top_rows


@dataclass(frozen=True)
class Ranked:
    """Every method's lists for one task: per method, each query's top rows."""

    lists: dict[str, list[list[int]]]


def rank_all(
    queries: Sequence[Item],
    corpus: Sequence[Item],
    encoder: Encoder | None,
    k: int,
    same_items: bool,
) -> Ranked:
    """Every method's top ``k`` of ``corpus`` for each query. ``same_items``: the queries are the
    corpus (an item is never its own neighbour). ``encoder`` None leaves the encoder's methods
    out."""
    q_texts = [item_text(i) for i in queries]
    c_texts = [item_text(i) for i in corpus]
    own = np.arange(len(queries)) if same_items else np.full(len(queries), -1)
    own = own.astype(np.intp)
    lists: dict[str, list[list[int]]] = {}
    words = tfidf_scores(q_texts, c_texts, "word")
    lists["tfidf_words"] = top_rows(words, k, own)
    char = tfidf_scores(q_texts, c_texts, "char")
    lists["tfidf_char"] = top_rows(char, k, own)
    if encoder is not None:
        encode = encoder_function(dense_part(encoder))
        c_vectors = encode(c_texts)
        q_vectors = c_vectors if same_items else encode(q_texts)
        dense = dense_top_rows(q_vectors, c_vectors, k, own)
        lists["dense"] = [rows.tolist() for rows in dense]
        fused = FUSION_DENSE_WEIGHT * (q_vectors @ c_vectors.T) + (1 - FUSION_DENSE_WEIGHT) * char
        lists["fusion"] = top_rows(fused, k, own)
        if isinstance(encoder, HybridEncoder):
            c_hybrid = encoder.fuse(c_vectors, c_texts)
            q_hybrid = c_hybrid if same_items else encoder.fuse(q_vectors, q_texts)
            ours = dense_top_rows(q_hybrid, c_hybrid, k, own)
            lists["recstream"] = [rows.tolist() for rows in ours]
    return Ranked(lists)


def abt_buy_queries(
    data: AbtBuy, pairs: list[tuple[str, str]]
) -> tuple[list[Item], list[set[int]]]:
    """The Abt products of ``pairs`` (sorted by id) and, for each, its twins' rows in ``data.buy``
    (in the file's order)."""
    row_of = {buy_id: row for row, buy_id in enumerate(data.buy)}
    truth = twins(pairs)
    abt_ids = sorted(truth)
    return [data.abt[a] for a in abt_ids], [{row_of[b] for b in truth[a]} for a in abt_ids]


def abt_buy_recall(
    data: AbtBuy,
    pairs: list[tuple[str, str]],
    encoder: Encoder | None,
) -> dict[str, dict[str, float]]:
    """Twin recall@1/5/10 of every method on ``pairs``."""
    queries, truth = abt_buy_queries(data, pairs)
    ranked = rank_all(queries, list(data.buy.values()), encoder, max(RECALL_AT), same_items=False)
    return {
        method: {f"R@{k}": round(twin_recall(lists, truth, k), 4) for k in RECALL_AT}
        for method, lists in ranked.lists.items()
    }


def catalogue_precision(catalogue: Catalogue, encoder: Encoder | None) -> dict[str, Any]:
    """Category precision@10 of every method over the items whose tree names a category."""
    items = list(catalogue.items.values())
    labels = [catalogue.leaf[i.item_id] for i in items]
    ranked = rank_all(items, items, encoder, PRECISION_AT, same_items=True)
    queries = [q for q, label in enumerate(labels) if label]
    methods = {
        method: {
            f"P@{PRECISION_AT}": round(
                category_precision(
                    [lists[q] for q in queries], [labels[q] for q in queries], labels, PRECISION_AT
                ),
                4,
            )
        }
        for method, lists in ranked.lists.items()
    }
    return {
        "items": len(items),
        "queries": len(queries),
        "categories": len(set(labels) - {""}),
        "methods": methods,
    }


def encoder_function(encoder: Encoder) -> Callable[[Sequence[str]], Scores]:
    def encode(texts: Sequence[str]) -> Scores:
        started = time.perf_counter()
        vectors = encoder.encode(texts)
        log.info("eval.encoded", texts=len(texts), s=round(time.perf_counter() - started, 1))
        return vectors

    return encode


DATA_SETS = 3


def missing_data(data_dir: Path) -> list[str]:
    """What is absent under ``data_dir``, one reason per data set (of :data:`DATA_SETS`); empty
    when all are there."""
    from recstream_tools.evaluation.copurchase import DATA_FILE

    reasons = []
    if not (data_dir / "abt_buy" / "abt_buy_perfectMapping.csv").is_file():
        reasons.append(f"Abt-Buy: no abt_buy_perfectMapping.csv in {data_dir / 'abt_buy'}")
    if not any((data_dir / "flipkart").glob("*.csv")):
        reasons.append(f"Flipkart: no CSV file in {data_dir / 'flipkart'}")
    if not (data_dir / "online_retail" / DATA_FILE).is_file():
        reasons.append(f"Online Retail: no {DATA_FILE} in {data_dir / 'online_retail'}")
    return reasons


def evaluate_neighbours(
    data_dir: Path,
    encoder: Encoder | None,
    out_dir: Path | None,
    cutoff: datetime = CO_PURCHASE_CUTOFF,
    until: datetime | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The result (written to ``<out_dir>/neighbours.json`` and ``.md``) and the reasons for
    each data set skipped. ``encoder`` None: the TF-IDF methods only. ``cutoff``: where Online
    Retail's period of co-purchases starts; ``until``: where it ends (None: the data's end)."""
    from recstream_tools.evaluation.copurchase import DATA_FILE, co_purchase_quality

    started = time.perf_counter()
    skipped = missing_data(data_dir)
    result: dict[str, Any] = {
        "model": encoder.name if encoder is not None else None,
        "runtime": encoder.runtime if encoder is not None else None,
        "device": encoder.device if encoder is not None else None,
    }
    abt_dir = data_dir / "abt_buy"
    if (abt_dir / "abt_buy_perfectMapping.csv").is_file():
        data = load_abt_buy(abt_dir)
        _, test = split_pairs(data.pairs)
        result["abt_buy"] = {
            "pairs": len(data.pairs),
            "test_pairs": len(test),
            "test_queries": len(twins(test)),
            "buy_products": len(data.buy),
            "methods": abt_buy_recall(data, test, encoder),
        }
    catalogues = sorted((data_dir / "flipkart").glob("*.csv"))
    if catalogues:
        loaded = [load_flipkart(path) for path in catalogues]
        result["flipkart"] = {c.name: catalogue_precision(c, encoder) for c in loaded}
    retail = data_dir / "online_retail" / DATA_FILE
    if retail.is_file():
        result["online_retail"] = co_purchase_quality(retail, encoder, cutoff, until)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["machine"] = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    if out_dir is not None and any(k in result for k in ("abt_buy", "flipkart", "online_retail")):
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{RESULT_NAME}.json").write_text(json.dumps(result, indent=2) + "\n")
        (out_dir / f"{RESULT_NAME}.md").write_text(format_markdown(result))
        result["paths"] = [str(out_dir / f"{RESULT_NAME}.{ext}") for ext in ("json", "md")]
    return result, skipped


def format_markdown(result: Mapping[str, Any]) -> str:
    """The result's tables in markdown."""
    lines: list[str] = []
    if "abt_buy" in result:
        abt = result["abt_buy"]
        lines += [
            f"Abt-Buy test split: {abt['test_queries']} Abt products ({abt['test_pairs']} of "
            f"{abt['pairs']} pairs), each searched among {abt['buy_products']} Buy products",
            "",
            "| method | " + " | ".join(f"R@{k}" for k in RECALL_AT) + " |",
            "|---|" + "---|" * len(RECALL_AT),
        ]
        for method, figures in abt["methods"].items():
            cells = " | ".join(f"{figures[f'R@{k}']:.3f}" for k in RECALL_AT)
            lines.append(f"| {METHOD_TITLES[method]} | {cells} |")
        lines.append("")
    if "flipkart" in result:
        names = list(result["flipkart"])
        lines += [
            f"Flipkart category precision@{PRECISION_AT} (leaf category; queries: items whose "
            "tree names one)",
            "",
            "| method | "
            + " | ".join(f"{n} ({result['flipkart'][n]['queries']})" for n in names)
            + " |",
            "|---|" + "---|" * len(names),
        ]
        for method in result["flipkart"][names[0]]["methods"]:
            cells = " | ".join(
                f"{result['flipkart'][n]['methods'][method][f'P@{PRECISION_AT}']:.3f}"
                for n in names
            )
            lines.append(f"| {METHOD_TITLES[method]} | {cells} |")
        lines.append("")
    if "online_retail" in result:
        retail = result["online_retail"]
        lines += [
            f"Online Retail co-purchases after {_when(retail['cutoff'])}"
            + (f" and before {_when(retail['until'])}" if retail.get("until") else "")
            + f": {retail['queries']} "
            f"items bought with others, each searched among {retail['items']} items",
            "",
            "| method | HR@10 | P@10 |",
            "|---|---|---|",
        ]
        for method, figures in retail["methods"].items():
            lines.append(
                f"| {METHOD_TITLES[method]} | {figures['HR@10']:.3f} | {figures['P@10']:.3f} |"
            )
        lines.append("")
    model = result.get("model") or "none (TF-IDF only)"
    lines.append(f"model: {model} ({result.get('runtime')}, {result.get('device')})")
    return "\n".join(lines) + "\n"


def _when(iso: str) -> str:
    """An ISO time as its day, or with its time of day when that is not midnight."""
    return iso[:10] if iso[10:19] in ("", "T00:00:00") else iso[:16]
