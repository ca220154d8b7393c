"""Generation 0 of a store never migrated: the model it names must compare equal to the same
model named as a migration's target, however the path was written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from stream.generations import Generation
from stream.migration.switch import _never_migrated
from stream.settings import Settings
from stream.store.edge import EdgeStore


def test_a_model_directory_named_relative_is_generation_zero_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    """`--from-model ./models/m` (or a relative RECSTREAM_MODEL through the admin API) names
    the directory a migration's target names by its absolute path: the same model, so a move
    to the sparse layout copies the vectors instead of embedding them again."""
    settings = make_settings()
    (tmp_path / "models" / "m").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    store = EdgeStore(str(tmp_path / "store"))
    try:
        source = _never_migrated(settings, store, "./models/m")
    finally:
        store.close()
    assert source.model == str((tmp_path / "models" / "m").resolve())
    target = Generation(1, source.model, source.lexical_weight, source.lexical_dim)
    assert target.same_model(source)
