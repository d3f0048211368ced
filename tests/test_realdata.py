"""Smoke tests on the real data sets in ../shared/data (skipped cleanly when absent)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from churnclv.cli import main
from churnclv.serving import SCORE_COLUMNS

pytestmark = pytest.mark.realdata

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ONLINE_RETAIL = SHARED / "online_retail" / "online_retail.parquet"
GROCERY = SHARED / "grocery_elog" / "groceryElog.csv"

RETAIL_COLS = [
    "--customer-col", "CustomerID", "--ts-col", "InvoiceDate",
    "--quantity-col", "Quantity", "--price-col", "UnitPrice",
]  # fmt: skip


@pytest.fixture
def retail() -> Path:
    if not ONLINE_RETAIL.exists():
        pytest.skip(f"{ONLINE_RETAIL} not present")
    return ONLINE_RETAIL


@pytest.fixture
def grocery() -> Path:
    if not GROCERY.exists():
        pytest.skip(f"{GROCERY} not present")
    return GROCERY


def test_online_retail_accounts_for_every_customer(
    retail: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """All 4,372 ids are either featured (4,338 buyers) or reported (34 with returns only)."""
    out = tmp_path / "f.parquet"
    args = ["features", "--transactions", str(retail), *RETAIL_COLS, "--as-of", "2011-12-10"]
    assert main([*args, "--out", str(out)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert len(pd.read_parquet(out)) == 4338
    assert "34 customers with rows before as_of have no purchase" in err
    assert "135,037 rows without a customer id skipped" in err
    assert "5,268 exact duplicate rows dropped" in err
    assert "8,872 return rows" in err


@pytest.mark.slow
def test_grocery_dates_only_trains_and_scores(grocery: Path, tmp_path: Path) -> None:
    """A dates-only history (--no-amount) trains, registers and scores every buyer."""
    base = [
        "--transactions",
        str(grocery),
        "--customer-col",
        "cust",
        "--ts-col",
        "date",
        "--no-amount",
    ]
    horizons = ["--churn-horizon-days", "60", "--value-horizon-days", "60"]
    work = ["--workdir", str(tmp_path)]
    assert main(["train", *base, *horizons, "--as-of", "2007-10-01", "--promote", *work]) == 0
    out = tmp_path / "scores.parquet"
    assert main(["score", *base, "--as-of", "2007-10-01", "--out", str(out), *work]) == 0
    scores = pd.read_parquet(out)
    assert list(scores.columns[: len(SCORE_COLUMNS)]) == list(SCORE_COLUMNS)
    assert scores["customer_id"].is_unique and len(scores) > 1000
