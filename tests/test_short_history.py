"""Short histories (customer-holdout design) and the value total's calibration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnclv import InputTables, generate, train
from churnclv.decisions import load_policy
from churnclv.serving._batch import score_features
from churnclv.serving._scorer import OnlineScorer
from churnclv.training import load_champion, load_model, tracking_uri_for
from churnclv.training._holdout import customer_holdout_split, held_out, holdout_verdict
from churnclv.training._total_scale import decile_ratios, total_scale


def test_customer_holdout_split_keeps_the_holdout_out_of_every_training_cutoff() -> None:
    """Holdout customers appear in no training row; the holdout is the latest cutoff only."""
    cuts = list(pd.to_datetime(["2024-01-01", "2024-01-31", "2024-03-01"]))
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(300)] * 3,
            "as_of": np.repeat(cuts, 300),
        }
    )
    train_rows, hold = customer_holdout_split(frame, cuts)
    assert set(hold["as_of"]) == {cuts[-1]}
    assert not set(train_rows["customer_id"]) & set(hold["customer_id"])
    assert len(hold) + len(train_rows) // 3 == 300  # everybody is on exactly one side
    assert 0.2 < len(hold) / 300 < 0.4
    assert (held_out(hold["customer_id"])).all()


def test_total_scale_on_a_tiny_window() -> None:
    """actual 150 over predicted 100: ratio 1.5; residuals a - 1.5 p = (0, -30, 15, 15), so
    se(r) = sqrt(1350) / 100 = 0.36742, se(log r) = 0.24495; weight = 0.25^2 /
    (0.25^2 + 0.24495^2) = 0.51020; scale = 1.5 ** 0.51020 = 1.22982."""
    a, p = np.array([30.0, 0.0, 60.0, 60.0]), np.array([20.0, 20.0, 30.0, 30.0])
    cal = total_scale(a, p)
    assert cal["ratio"] == pytest.approx(1.5)
    assert cal["se"] == pytest.approx(0.24495, abs=1e-5)
    assert cal["weight"] == pytest.approx(0.51020, abs=1e-5)
    assert cal["scale"] == pytest.approx(1.22982, abs=1e-5)
    # nothing spent: no evidence, no scaling
    assert total_scale(np.zeros(4), p)["scale"] == 1.0
    # predicted over actual per decile of prediction, highest first
    assert decile_ratios(np.arange(1.0, 21.0) * 2, np.arange(1.0, 21.0)) == [0.5] * 10


def test_holdout_verdict_keeps_only_a_hybrid_that_beats_bgnbd() -> None:
    m = {
        "churn_roc_auc": 0.80,
        "baseline_bgnbd_churn_roc_auc": 0.80,
        "value_gini": 0.4,
        "baseline_bgnbd_gg_value_gini": 0.5,
    }
    both = {"churn": "customer_holdout", "value": "customer_holdout"}
    assert list(holdout_verdict(both, m, {})) == ["value"]  # a tie keeps the hybrid
    assert holdout_verdict({"churn": "out_of_time", "value": "out_of_time"}, m, {}) == {}


def test_one_year_and_181_days_trains_the_hybrid_on_a_customer_holdout(tmp_path: Path) -> None:
    """One year of history and 181-day horizons: the purged split has no training cutoff,
    so the run is tagged customer_holdout; each model is the hybrid or falls back with the
    holdout comparison as the reason; the churn model is refitted on every labelled row."""
    import mlflow

    data = generate(800, seed=3, history_days=365)
    tables = InputTables(data.transactions, data.events, data.customers)
    uri = tracking_uri_for(tmp_path)
    r = train(
        tables,
        as_of=data.as_of,
        tracking_uri=uri,
        churn_horizon_days=181,
        value_horizon_days=181,
        max_cutoffs=3,
    )
    assert r.evaluation == {"churn": "customer_holdout", "value": "customer_holdout"}
    assert r.evaluation_note.startswith("evaluation: churn by customer holdout")
    for kind in ("churn", "value"):
        assert kind not in r.fallbacks or r.fallbacks[kind].startswith(
            "the hybrid does not beat BG/NBD on the customer holdout"
        )
    if r.model_kinds["churn"] == "lightgbm":  # kept: refitted on every labelled row
        assert r.n_rows["churn_refit"] > r.n_rows["churn_train"]
    mlflow.set_tracking_uri(uri)
    run = mlflow.get_run(r.run_id)
    assert run.data.tags["evaluation"] == "customer_holdout"


def test_the_total_scale_travels_with_the_model_to_batch_and_service(
    demo_workdir: Path, tmp_path: Path
) -> None:
    """A value model's total_scale is saved with it and multiplies its predictions alike in
    the batch scorer and the online scorer."""
    from test_online_scorer import AS_OF, _customers

    champ = load_champion(tracking_uri_for(demo_workdir))
    assert champ.value.total_scale_ > 0
    value = load_model(champ.value.save(tmp_path / "value"))
    value.attach(total_scale=value.total_scale_ * 1.25)  # type: ignore[attr-defined]
    scaled = load_model(value.save(tmp_path / "scaled"))
    assert scaled.total_scale_ == pytest.approx(champ.value.total_scale_ * 1.25)  # type: ignore[attr-defined]
    big = dataclasses.replace(champ, value=scaled)
    customers = _customers(demo_workdir, 12)
    online = OnlineScorer(big, load_policy()).score_customers(customers)
    plain = OnlineScorer(champ, load_policy()).score_customers(customers)
    for a, b in zip(online, plain, strict=True):
        assert a["predicted_value"] == pytest.approx(b["predicted_value"] * 1.25, rel=1e-12)
    scorer = OnlineScorer(big, load_policy())
    keys = [str(i) for i in range(len(customers))]
    frame = scorer.session.customer_features(customers, keys, AS_OF)
    own = {key: c.customer_id for key, c in zip(keys, customers, strict=True)}
    frame["customer_id"] = frame["customer_id"].map(own)
    batch = score_features(frame, big, load_policy()).set_index("customer_id")
    for rec in online:
        assert batch.loc[rec["customer_id"], "predicted_value"] == rec["predicted_value"]


def test_window_drift_of_the_spend_level() -> None:
    """Mean labels 2.0, 1.6, 1.0 at cutoffs 90 days apart: log changes ln 0.8 = -0.22314
    and ln 0.625 = -0.47000, root mean square 0.36790; no pair one horizon apart: NaN."""
    from churnclv.training._total_scale import window_drift

    cuts = pd.to_datetime(["2024-01-01"] * 2 + ["2024-03-31"] * 2 + ["2024-06-29"] * 2)
    frame = pd.DataFrame({"as_of": cuts, "future_value": [3.0, 1.0, 2.0, 1.2, 0.5, 1.5]})
    assert window_drift(frame, 90) == pytest.approx(0.36790, abs=1e-5)
    assert np.isnan(window_drift(frame, 400))
    # a drift of 0.3 cuts the weight of the tiny window's ratio: 0.0625 / (0.0625 + 0.24495^2
    # + 0.09) = 0.29412, scale 1.5 ** 0.29412 = 1.12666
    a, p = np.array([30.0, 0.0, 60.0, 60.0]), np.array([20.0, 20.0, 30.0, 30.0])
    assert total_scale(a, p, drift=0.3)["scale"] == pytest.approx(1.12666, abs=1e-5)
