"""Marketer fields (DESIGN §13): orders, next order date, CLV to date and ahead, ranks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from churnclv._clv_fields import (
    CLV_COLUMNS,
    MIN_ORDER_PROBABILITY,
    add_to_records,
    clv_columns,
    rank_reference,
)
from churnclv.decisions import load_policy

BTYD = {
    "bgnbd": {"r": 0.5, "alpha": 5.0, "a": 0.8, "b": 2.5},
    "gamma_gamma": {"p": 6.0, "q": 4.0, "v": 15.0},
    "time_unit_days": 7.0,
    "churn_horizon_days": 90.0,
    "value_horizon_days": 365.0,
}


@dataclass
class _Model:
    btyd_: dict[str, Any] | None
    reference_: dict[str, list[float]]


@dataclass
class _Champion:
    churn: _Model
    value: _Model
    churn_horizon_days: float = 90.0
    value_horizon_days: float = 365.0


def _features() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["busy", "gone", "new"],
            "as_of": pd.to_datetime(["2024-01-01"] * 3),
            "frequency": [20.0, 3.0, 0.0],
            "recency_days": [3.0, 400.0, 10.0],
            "tenure_days": [300.0, 700.0, 10.0],
            "gap_mean_days": [15.0, 90.0, np.nan],
            "monetary_mean": [40.0, 30.0, 25.0],
            "monetary_total": [800.0, 120.0, 25.0],
        }
    )


def _champion(btyd: dict[str, Any] | None = BTYD) -> _Champion:
    rows = pd.DataFrame(
        {
            "recency_days": np.linspace(1, 500, 200),
            "tenure_days": np.full(200, 600.0),
            "gap_mean_days": np.full(200, 30.0),
        }
    )
    p = np.linspace(0.0, 1.0, 200)
    v = np.linspace(500.0, 0.0, 200)  # recent customers are worth more
    reference = {"predicted_value": np.quantile(v, np.linspace(0, 1, 1001)).tolist()}
    reference |= rank_reference(rows, p, v)
    return _Champion(_Model(btyd, {}), _Model(btyd, reference))


def test_fields_follow_their_definitions() -> None:
    """Orders rise with activity, dates only for likely buyers, CLV sums, ranks in range."""
    feats = _features()
    p = np.array([0.05, 0.97, 0.5])
    v = np.array([600.0, 2.0, 40.0])
    stage = np.array(["active", "churned", "new"])
    out = clv_columns(feats, p, v, stage, _champion(), load_policy())
    assert set(out) == set(CLV_COLUMNS)
    orders = out["predicted_orders"]
    assert orders[0] > orders[2] > orders[1] >= 0
    dates = out["expected_next_order_date"]
    assert dates[1] is None  # almost surely gone: no date
    assert dates[0] is not None and "2024-01-01" < dates[0] < "2024-03-01"  # a busy buyer soon
    np.testing.assert_allclose(out["total_clv"], feats["monetary_total"] + v)
    np.testing.assert_allclose(out["predicted_clv"], v)
    assert out["churn_rank_pct"][0] < 10 and out["churn_rank_pct"][1] > 90
    assert out["value_rank_pct"][0] == 100.0 and out["value_rank_pct"][1] < 1
    # within its stage: the churned customer ranks among the reference's churned customers
    assert 0 <= out["value_rank_pct_in_stage"][1] <= 100


def test_one_customer_gets_the_answer_it_gets_in_a_batch() -> None:
    """Ranks and dates depend on the customer and the champion only, not on the batch."""
    feats = _features()
    p, v = np.array([0.05, 0.97, 0.5]), np.array([600.0, 2.0, 40.0])
    stage = np.array(["active", "churned", "new"])
    champion, policy = _champion(), load_policy()
    batch = clv_columns(feats, p, v, stage, champion, policy)
    for i in range(3):
        one = clv_columns(feats.iloc[[i]], p[[i]], v[[i]], stage[[i]], champion, policy)
        for col in CLV_COLUMNS:
            got, want = one[col][0], batch[col][i]
            assert got == want or (got != got and want != want), col


def test_without_btyd_or_reference_the_fields_degrade_to_null() -> None:
    """No BTYD pair: orders from value / mean order, no date; no reference: no ranks."""
    feats = _features()
    champion = _Champion(_Model(None, {}), _Model(None, {}))
    out = clv_columns(
        feats, np.array([0.1, 0.9, 0.5]), np.array([80.0, 0.0, 50.0]),
        np.array(["active", "churned", "new"]), champion, load_policy(),
    )  # fmt: skip
    np.testing.assert_allclose(out["predicted_orders"], [2.0, 0.0, 2.0])
    assert out["expected_next_order_date"] == [None, None, None]
    assert np.isnan(out["churn_rank_pct"]).all() and np.isnan(out["value_rank_pct_in_stage"]).all()
    records: list[dict[str, Any]] = [{}, {}, {}]
    add_to_records(records, out)
    assert records[0]["churn_rank_pct"] is None and records[0]["historic_clv"] == 800.0


def test_next_order_threshold_is_documented_value() -> None:
    assert MIN_ORDER_PROBABILITY == 0.1


def test_scores_beat_bgnbd_on_realised_orders(demo_workdir: Path) -> None:
    """Acceptance 4: predicted orders rank realised orders at least as well as BG/NBD does,
    and the next order dates are within weeks of the realised ones."""
    from churnclv.features import build_features
    from churnclv.training import load_champion, tracking_uri_for
    from churnclv.training._btyd import BTYDModels, btyd_arrays

    scores = pd.read_parquet(demo_workdir / "scores.parquet")
    assert set(CLV_COLUMNS) <= set(scores.columns)
    truth = pd.read_parquet(demo_workdir / "data" / "truth.parquet")
    tx = pd.read_parquet(demo_workdir / "data" / "transactions.parquet")
    champion = load_champion(tracking_uri_for(demo_workdir))
    as_of = pd.Timestamp(scores["as_of"].iloc[0])
    feats = build_features(tx[tx["ts"] < as_of], as_of=as_of).set_index("customer_id")
    feats = feats.loc[scores["customer_id"]]
    btyd = champion.churn.btyd_ or champion.value.btyd_
    _, _, ((bg_orders, _),) = btyd_arrays(
        BTYDModels.from_params(btyd), feats, (champion.value_horizon_days,)
    )
    realised = truth.set_index("customer_id").loc[scores["customer_id"], "actual_purchases_365"]
    ours = spearmanr(scores["predicted_orders"], realised).statistic
    theirs = spearmanr(bg_orders, realised).statistic
    assert ours >= theirs, (ours, theirs)
    future = tx[(tx["ts"] >= as_of) & (tx["amount"] > 0)].groupby("customer_id")["ts"].min()
    dated = scores.dropna(subset=["expected_next_order_date"]).set_index("customer_id")
    both = dated.index.intersection(future.index)
    error = (pd.to_datetime(dated.loc[both, "expected_next_order_date"]) - future[both]).abs()
    assert len(both) > 50 and error.dt.days.median() < 45
    assert scores["value_rank_pct"].between(0, 100).all()
    assert scores["churn_rank_pct"].between(0, 100).all()
    assert scores["value_rank_pct_in_stage"].between(0, 100).all()
    np.testing.assert_allclose(
        scores["total_clv"], scores["historic_clv"] + scores["predicted_clv"], rtol=1e-9
    )


def test_missing_predictions_give_null_ranks() -> None:
    out = clv_columns(
        _features().iloc[[0]], np.array([np.nan]), np.array([np.nan]), np.array(["active"]),
        _champion(), load_policy(),
    )  # fmt: skip
    assert np.isnan(out["churn_rank_pct"][0]) and np.isnan(out["value_rank_pct"][0])
