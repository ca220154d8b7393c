"""``recstream eval recommendations`` on a slice of the real Online Retail data: the table names
every method with figures in [0, 1], the JSON lands in --out, a missing file exits 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from recstream_tools.evaluation.run import METHODS, RESULT_FILE
from stream import cli

pytestmark = pytest.mark.data

DATA = Path(__file__).resolve().parents[2] / "../shared/data/online_retail/online_retail.csv.gz"
ROW = re.compile(r"^(\w+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)$")


def test_eval_prints_every_method_and_writes_the_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three methods, each with HitRate@10, NDCG@10 and Recall@20 in [0, 1], and the JSON file."""
    if not DATA.is_file():
        pytest.skip(f"Online Retail data not found at {DATA.resolve()}")
    out = tmp_path / "results"
    # the first 40,000 lines run from 2010-12-01 to 2010-12-21
    code = cli.main(
        [
            "eval",
            "recommendations",
            f"--data={DATA}",
            "--cutoff=2010-12-10",
            "--max-rows=40000",
            "--max-users=40",
            "--workers=1",
            f"--out={out}",
            "--log-level=warning",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    rows = {m[1]: m for m in (ROW.match(line) for line in printed.splitlines()) if m}
    assert set(rows) == set(METHODS)
    for match in rows.values():
        assert all(0.0 <= float(match[k]) <= 1.0 for k in (2, 3, 4))
        assert int(match[5]) == 40
    result = json.loads((out / RESULT_FILE).read_text())
    assert f"results: {out / RESULT_FILE}" in printed
    assert set(result["methods"]) == set(METHODS)
    assert result["users"] == 40
    assert result["cutoff"] == "2010-12-10T00:00:00+00:00"
    assert result["weights"]["popular"]["popularity"] == 1.0
    # each change the tuner weighed, with its evidence, in the JSON and on the screen
    decisions = result["tuning"]["decisions"]
    assert [d["change"].split(" ")[0] for d in decisions] == ["weights", "model"]
    for d in decisions:
        assert d["taken"] == (d["ndcg@10_gain"] > d["needed_se"] * d["se"])
        assert f"{d['change']}: NDCG@10 {d['ndcg@10_gain']:+.4f}" in printed
    assert [d["needed_se"] for d in decisions] == [2.0, pytest.approx(2.77, abs=0.01)]


def test_eval_without_the_data_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing --data file stops with exit code 2 and says which file, before any work."""
    missing = tmp_path / "nope.csv.gz"
    code = cli.main(["eval", "recommendations", f"--data={missing}", f"--out={tmp_path}"])
    assert code == 2
    assert str(missing) in capsys.readouterr().err
