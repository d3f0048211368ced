"""Shared fixtures: small generated data and one trained work directory per session."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from churnclv.cli import main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ONLINE_RETAIL = SHARED / "online_retail" / "online_retail.parquet"
GROCERY = SHARED / "grocery_elog" / "groceryElog.csv"


@pytest.fixture(scope="session")
def generated_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with 600 generated customers (transactions, events, customers, truth)."""
    out = tmp_path_factory.mktemp("generated")
    assert main(["generate", "--customers", "600", "--seed", "7", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def demo_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work directory after `churnclv demo` on 1,500 customers; what it printed is in
    ``demo_output.txt`` there."""
    work = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["demo", "--workdir", str(work), "--customers", "1500", "--seed", "3"])
    (work / "demo_output.txt").write_text(printed.getvalue(), encoding="utf-8")
    assert code == 0, printed.getvalue()
    return work


@pytest.fixture(scope="session")
def svc_workdir(demo_workdir: Path) -> Path:
    """The service tests' work directory: the session's one trained demo (models + scores)."""
    return demo_workdir
