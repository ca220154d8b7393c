"""``recstream eval recommendations`` on a shop's own files (CSV and JSON lines): every method
in the table and the JSON, bad rows reported by line, and tuning that never sees the evaluated
period (two data sets equal before the cutoff and different after tune identically)."""

from __future__ import annotations

import csv
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recstream_tools.evaluation.run import RESULT_FILE
from stream import cli

THEMES = {
    "garden": ["hose", "trowel", "rake", "gloves", "seed tray", "watering can", "pruner", "pots"],
    "kitchen": ["whisk", "ladle", "pan", "kettle", "grater", "tongs", "sieve", "peeler"],
    "desk": ["stapler", "notebook", "pen set", "lamp", "tape", "folder", "ruler", "clips"],
}
CUTOFF = datetime(2026, 4, 1, tzinfo=UTC)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def write_items(path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["item_id", "title", "category", "price"])
        for theme, names in THEMES.items():
            for n, name in enumerate(names):
                w.writerow([f"{theme}-{n}", f"{theme.title()} {name}", theme, 5 + n])
        w.writerow(["", "a row without an id", "", ""])  # line 26: rejected


def interactions(after_theme_shift: bool) -> list[dict[str, object]]:
    """Shoppers stick to one theme before the cutoff; after it they buy more of it, or (the
    shifted variant) items of another theme."""
    rng = random.Random(11)
    rows: list[dict[str, object]] = []
    themes = list(THEMES)
    for u in range(90):
        theme = themes[u % 3]
        items = [f"{theme}-{n}" for n in range(8)]
        bought = rng.sample(items, 4)
        for k, item in enumerate(bought):
            at = T0 + timedelta(days=rng.uniform(0, 89), hours=k)
            rows.append({"user_id": f"u{u}", "item_id": item, "timestamp": at.isoformat()})
        later = themes[(u + 1) % 3] if after_theme_shift else theme
        for n in rng.sample(range(8), 2):
            at = CUTOFF + timedelta(days=rng.uniform(0, 20))
            rows.append(
                {"user_id": f"u{u}", "item_id": f"{later}-{n}", "timestamp": at.timestamp()}
            )
    return rows


def run_eval(tmp: Path, after_theme_shift: bool, capsys: pytest.CaptureFixture[str]) -> dict:
    tmp.mkdir()
    items = tmp / "items.csv"
    write_items(items)
    events = tmp / "events.jsonl"
    with events.open("w") as f:
        for row in interactions(after_theme_shift):
            f.write(json.dumps(row) + "\n")
        f.write("{not json\n")
    code = cli.main(
        [
            "eval",
            "recommendations",
            f"--interactions={events}",
            f"--items={items}",
            f"--cutoff={CUTOFF.date().isoformat()}",
            "--workers=1",
            "--samples=20",
            f"--out={tmp}",
            "--log-level=warning",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "recstream_tuned" in printed and "ease" in printed
    return json.loads((tmp / RESULT_FILE).read_text())


def test_a_shops_files_are_evaluated_and_tuning_never_sees_the_evaluated_period(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every method is reported; the bad rows are counted with their line numbers; the tuned
    settings and validation figures are equal for two data sets that differ only after the
    cutoff, while the evaluated figures differ."""
    same = run_eval(tmp_path / "same", False, capsys)
    shifted = run_eval(tmp_path / "shifted", True, capsys)
    assert set(same["methods"]) == {
        "recstream",
        "popular",
        "cooccurrence",
        "recstream_tuned",
        "item_knn",
        "ease",
        "ease_decayed",
        "als",
    }
    for figures in same["methods"].values():
        assert all(0.0 <= v <= 1.0 for v in figures.values())
    assert same["rejected_rows"]["items"]["first"] == ["line 26: no item_id"]
    assert same["rejected_rows"]["interactions"]["count"] == 1
    assert same["rejected_rows"]["interactions"]["first"][0].startswith("line 541: not JSON")
    assert same["tuning"] == shifted["tuning"] | {"seconds": same["tuning"]["seconds"]}
    assert same["methods"]["recstream_tuned"] != shifted["methods"]["recstream_tuned"]
    # shoppers who keep to their theme are easy: the tuned blend finds them
    assert same["methods"]["recstream_tuned"]["hit_rate@10"] > 0.9
