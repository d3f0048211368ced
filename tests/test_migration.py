"""Tier migration between score snapshots, and the notebooks' computed sentences."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from churnclv import (
    champion_vs_baselines_sentence,
    migration_matrix,
    migration_summary,
    value_at_risk_sentence,
)

# Hand-built snapshots: 8 customers before, 8 after; a..f in both, g, h gone, i, j new.
BEFORE = pd.DataFrame(
    {
        "customer_id": ["a", "b", "c", "d", "e", "f", "g", "h"],
        "value_tier": ["high", "high", "medium", "medium", "low", "low", "high", "low"],
        "lifecycle_stage": ["active", "silent", "active", "new", "silent", "churned", "active",
                            "new"],
        "as_of": pd.Timestamp("2024-01-01"),
    }
)  # fmt: skip
AFTER = pd.DataFrame(
    {
        "customer_id": ["a", "b", "c", "d", "e", "f", "i", "j"],
        "value_tier": ["high", "medium", "high", "medium", "medium", "low", "low", "high"],
        "lifecycle_stage": ["active", "churned", "active", "active", "churned", "churned", "new",
                            "new"],
        "as_of": pd.Timestamp("2024-04-01"),
    }
)  # fmt: skip


def test_tier_migration_matrix_matches_a_hand_count():
    """a stays high, b high->medium, c medium->high, d stays medium, e low->medium,
    f stays low; g (high) and h (low) are gone; i (low) and j (high) are new."""
    expected = pd.DataFrame(
        [[1, 1, 0, 1], [1, 1, 0, 0], [0, 1, 1, 1], [1, 0, 1, 0]],
        index=pd.Index(["high", "medium", "low", "new customer"], name="previous value_tier"),
        columns=pd.Index(["high", "medium", "low", "gone"], name="current value_tier"),
        dtype="int64",
    )
    pd.testing.assert_frame_equal(migration_matrix(BEFORE, AFTER), expected)


def test_lifecycle_matrix_keeps_stage_new_apart_from_new_customers():
    got = migration_matrix(BEFORE, AFTER, column="lifecycle_stage")
    assert list(got.index) == ["new", "active", "silent", "churned", "new customer"]
    assert got.loc["new", "active"] == 1 and got.loc["new", "gone"] == 1  # d, h
    assert got.loc["silent", "churned"] == 2  # b, e
    assert got.loc["new customer", "new"] == 2  # i, j
    assert int(got.to_numpy().sum()) == 10


def test_summary_counts_and_sentence():
    s = migration_summary(BEFORE, AFTER)
    assert {k: s[k] for k in ("customers", "upgrades", "downgrades", "unchanged")} == {
        "customers": 6,
        "upgrades": 2,  # c, e
        "downgrades": 1,  # b
        "unchanged": 3,
    }
    assert (s["new"], s["gone"], s["newly_churned"]) == (2, 2, 2)  # b, e (f was churned)
    assert s["sentence"] == (
        "Since 2024-01-01, 2 customers moved up a value tier and 1 customer moved down "
        "(3 of 6 customers in both snapshots kept their tier); 2 customers became churned. "
        "2 customers are new, 2 gone."
    )
    flipped = migration_summary(AFTER.assign(as_of=BEFORE["as_of"]), BEFORE)
    assert flipped["sentence"].startswith(
        "Since 2024-01-01, 1 customer moved up a value tier and 2 customers moved down"
    )
    assert migration_summary(BEFORE.drop(columns="lifecycle_stage"), AFTER)["newly_churned"] is None


def test_report_section_and_previous_snapshot(tmp_path: Path):
    from churnclv._migration import previous_snapshot
    from churnclv._report import _migration_section

    snaps = tmp_path / "snapshots"
    snaps.mkdir()
    BEFORE.to_parquet(snaps / "2024-01-01.parquet")
    AFTER.to_parquet(snaps / "2024-04-01.parquet")
    assert previous_snapshot(tmp_path, "2024-01-01") is None
    prev = previous_snapshot(tmp_path, pd.Timestamp("2024-04-01"))
    assert prev is not None and list(prev["customer_id"]) == list(BEFORE["customer_id"])
    html = _migration_section(prev, AFTER)
    assert "Since the last snapshot" in html and "2 customers moved up" in html
    assert "New customers" in html and "value_tier" not in html
    assert _migration_section(None, AFTER) == ""


def test_lookup_rows_carry_the_previous_tier(tmp_path: Path):
    pytest.importorskip("bentoml")
    from churnclv.serving._responses import SnapshotRow
    from churnclv.serving._snapshot import ScoresSnapshot

    (tmp_path / "snapshots").mkdir()
    BEFORE.to_parquet(tmp_path / "snapshots" / "2024-01-01.parquet")
    AFTER.to_parquet(tmp_path / "snapshots" / "2024-04-01.parquet")
    AFTER.to_parquet(tmp_path / "scores.parquet")
    found, missing = ScoresSnapshot(tmp_path / "scores.parquet").lookup(["b", "i", "zz"])
    assert [r["previous_value_tier"] for r in found] == ["high", None] and missing == ["zz"]
    assert "previous_value_tier" in SnapshotRow.model_json_schema()["properties"]


def _scores(tiers: list[str], bands: list[str], values: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "value_tier": tiers,
            "risk_band": bands,
            "churn_probability": [0.9 if b == "high" else 0.3 for b in bands],
            "predicted_value": values,
        }
    )


def test_value_at_risk_sentence_follows_the_data():
    tiers, bands = ["high", "high", "low", "medium"], ["high", "low", "high", "medium"]
    hh = value_at_risk_sentence(_scores(tiers, bands, [1000.0, 100.0, 50.0, 20.0]))
    assert hh.startswith("Most value at risk sits with high-value customers at high churn risk")
    assert "priority" in hh
    # the same customers, but the money now sits with the high-value, low-risk one
    hl = value_at_risk_sentence(_scores(tiers, bands, [100.0, 5000.0, 50.0, 20.0]))
    assert hl.startswith("Most value at risk sits with high-value customers at low churn risk")
    assert "High-value customers at high risk hold 5%" in hl  # 90 of 1,641
    assert hh != hl


def test_champion_vs_baselines_sentence_follows_the_metrics():
    metrics = {
        "churn_roc_auc": 0.80,
        "baseline_rfm_churn_roc_auc": 0.70,
        "baseline_bgnbd_churn_roc_auc": 0.75,
        "value_rmse": 100.0,
        "baseline_bgnbd_gg_value_rmse": 120.0,
        "value_decile_mape": 0.30,
        "baseline_bgnbd_gg_value_decile_mape": 0.40,
    }
    assert champion_vs_baselines_sentence(metrics) == (
        "The champion beats every baseline on all 3 measures they share."
    )
    worse = {**metrics, "value_rmse": 130.0, "value_decile_mape": 0.5}
    assert champion_vs_baselines_sentence(worse) == (
        "The champion beats every baseline on 1 of 3 measures; it loses on value decile MAPE "
        "(BG/NBD + Gamma-Gamma 0.4 vs 0.5), value RMSE (BG/NBD + Gamma-Gamma 120 vs 130)."
    )
    assert "cannot be compared" in champion_vs_baselines_sentence({"churn_roc_auc": 0.8})
