"""Looking for a champion never creates or migrates a tracking store."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnclv._errors import InputError
from churnclv.training import load_champion


def test_a_missing_sqlite_store_is_reported_and_not_created(tmp_path: Path) -> None:
    """load_champion on a store that does not exist says so and leaves no file behind."""
    db = tmp_path / "mlruns.db"
    with pytest.raises(InputError, match="no tracking store at"):
        load_champion(f"sqlite:///{db}")
    assert not db.exists()


def test_a_store_being_created_is_read_only_and_has_no_champion(tmp_path: Path) -> None:
    """A store file without the alias table (mid-creation) is not touched: no champion yet."""
    db = tmp_path / "mlruns.db"
    db.write_bytes(b"")
    with pytest.raises(InputError, match="no registered model churnclv-churn@champion"):
        load_champion(f"sqlite:///{db}")
    assert db.read_bytes() == b""
