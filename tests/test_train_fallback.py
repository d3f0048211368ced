"""Histories too short for the label window: say so and fall back to the BTYD model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnclv._io import load_inputs
from churnclv.cli import main
from churnclv.features import build_features
from churnclv.training import (
    ALIAS,
    CHURN_MODEL,
    VALUE_MODEL,
    BTYDModel,
    load_champion,
    load_model,
    tracking_uri_for,
    train,
)
from churnclv.training._hybrid import btyd_columns, fit_params

AS_OF = "2024-01-01"


@pytest.fixture(scope="module")
def short_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 generated customers whose histories start at most 150 days before as_of."""
    out = tmp_path_factory.mktemp("short")
    args = ["generate", "--customers", "300", "--seed", "4", "--history-days", "150"]
    assert main([*args, "--out", str(out)]) == 0
    return out


def _inputs(folder: Path) -> list[str]:
    return [
        "--transactions",
        str(folder / "transactions.parquet"),
        "--events",
        str(folder / "events.parquet"),
        "--customers",
        str(folder / "customers.parquet"),
    ]


def test_short_history_trains_and_scores_with_the_btyd_fallback(
    short_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`train` on five months of data with 90/365-day horizons exits 0, says on stderr that
    both models fall back, and `score` then gives exactly the BG/NBD (+GG) predictions
    fitted as of as_of."""
    import mlflow

    work = tmp_path / "work"
    horizons = ["--churn-horizon-days", "90", "--value-horizon-days", "365"]
    args = ["train", *_inputs(short_dir), "--as-of", AS_OF, *horizons, "--promote"]
    assert main([*args, "--workdir", str(work)]) == 0
    err = capsys.readouterr().err
    assert "fallback: churn model: history too short for the churn horizon of 90 days" in err
    assert "fallback: value model: history too short for the value horizon of 365 days" in err
    assert "\nevaluation: churn " in f"\n{err}"  # the CLI says which design judged each model

    mlflow.set_tracking_uri(tracking_uri_for(work))
    run = mlflow.search_runs(experiment_names=["churnclv"]).iloc[0]
    assert run["tags.fallback_churn"].startswith("history too short for the churn horizon")
    assert run["tags.fallback_value"].startswith("history too short for the value horizon")
    assert run["params.value_model_kind"] == "btyd_fallback"
    # the value window (365 days before as_of) precedes every purchase: nothing to measure
    assert "metrics.value_gini" not in run or pd.isna(run["metrics.value_gini"])
    assert run["tags.evaluation_value"].startswith("none")

    out = tmp_path / "scores.parquet"
    code = main(
        ["score", *_inputs(short_dir), "--as-of", AS_OF, "--out", str(out), "--workdir", str(work)]
    )
    assert code == 0
    scores = pd.read_parquet(out)
    tx = pd.read_parquet(short_dir / "transactions.parquet")
    feats = build_features(tx, as_of=AS_OF)
    # the fallback is the purchase model the run chose by holdout likelihood (+ Gamma-Gamma)
    chosen = run["params.btyd_purchase_model"]
    expected = btyd_columns(feats, fit_params(feats, 90, 365, chosen))
    expected = expected.set_index(feats["customer_id"])
    expected = expected.reindex(scores["customer_id"])
    assert len(scores) == len(feats) > 0
    np.testing.assert_allclose(
        scores["churn_probability"], expected["btyd_p_no_purchase_churn"], rtol=1e-12
    )
    # Gamma-Gamma's optimiser turns last-bit differences in the monetary sums (training's
    # multi-cutoff SQL vs this one-cutoff query) into ~1e-7 relative differences.
    np.testing.assert_allclose(scores["predicted_value"], expected["btyd_clv_value"], rtol=1e-6)
    assert scores["reasons"].str.len().gt(0).all()


@pytest.mark.slow
def test_a_fallback_never_replaces_a_trained_champion(demo_workdir: Path, tmp_path: Path) -> None:
    """On a store with trained champions, a run whose horizons leave no labelled cutoff
    (no label window ends by as_of, so not even the customer-holdout design can train)
    registers fallbacks but keeps the champions."""
    from mlflow import MlflowClient

    work = tmp_path / "work"
    shutil.copytree(demo_workdir, work)
    uri = tracking_uri_for(work)
    data = work / "data"
    tables = load_inputs(
        data / "transactions.parquet", data / "events.parquet", data / "customers.parquet"
    )
    result = train(
        tables,
        as_of=AS_OF,
        tracking_uri=uri,
        churn_horizon_days=1000,
        value_horizon_days=1000,
        promote=True,
    )
    assert set(result.fallbacks) == {"churn", "value"}
    assert result.promoted == {"churn": False, "value": False}
    assert "never replaces a trained champion" in result.reasons["value"]
    client = MlflowClient(uri, uri)
    for name in (CHURN_MODEL, VALUE_MODEL):
        assert str(client.get_model_version_by_alias(name, ALIAS).version) == "1"
    assert client.get_model_version(VALUE_MODEL, result.value_version).tags["model_kind"] == (
        "btyd_fallback"
    )


def test_btyd_model_round_trips_and_explains_itself(generated_dir: Path, tmp_path: Path) -> None:
    """The fallback saves as schema.json alone, loads with identical predictions, and its
    contributions of a row add up to logit P(churn) minus the baseline customer's."""
    tx = pd.read_parquet(generated_dir / "transactions.parquet")
    feats = build_features(tx, as_of=AS_OF)
    params = fit_params(feats, 90, 365)
    assert params is not None
    churn = BTYDModel("churn", params).fit(feats)
    loaded = load_model(churn.save(tmp_path / "m"))
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["schema.json"]
    np.testing.assert_array_equal(loaded.predict(feats), churn.predict(feats))
    rows = feats.head(50)
    contrib = loaded.contributions(rows)
    p = loaded.predict(rows)
    base = loaded.predict(pd.DataFrame([loaded.baseline_]))[0]
    logit = np.log(p / (1 - p)) - np.log(base / (1 - base))
    np.testing.assert_allclose(contrib.sum(axis=1), logit, atol=1e-9)
    assert (contrib["monetary_mean"] == 0).all()  # spend does not move P(no purchase)
    value = BTYDModel("value", params).fit(feats)
    assert (value.predict(feats) > 0).all()
    assert value.importance().index[0] in value.features_


def test_the_fallback_champion_is_replaced_by_a_newer_fallback(
    short_dir: Path, tmp_path: Path
) -> None:
    """A fallback champion is refreshed by the next fallback run on the same store."""
    uri = tracking_uri_for(tmp_path)
    tables = load_inputs(short_dir / "transactions.parquet")
    first = train(tables, as_of=AS_OF, tracking_uri=uri, promote=True)
    assert first.promoted == {"churn": True, "value": True}
    second = train(tables, as_of=AS_OF, tracking_uri=uri, promote=True)
    assert second.promoted == {"churn": True, "value": True}
    assert "replaces the previous fallback champion" in second.reasons["churn"]
    champ = load_champion(uri)
    assert isinstance(champ.churn, BTYDModel) and isinstance(champ.value, BTYDModel)
    assert champ.churn_version == second.churn_version


def test_value_fallback_next_to_a_trained_churn_model_with_events(tmp_path: Path) -> None:
    """When only the value model falls back, the trained churn model (which reads event
    features) still ranks the customers as of ``as_of``: the training completes."""
    from churnclv import InputTables, generate

    data = generate(400, seed=5, history_days=500, future_days=0, campaigns=False)
    tables = InputTables(data.transactions, data.events, data.customers)
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    result = train(tables, as_of=AS_OF, tracking_uri=uri, value_horizon_days=365, promote=True)
    assert set(result.fallbacks) == {"value"}
    assert any(c.startswith("ev_") for c in load_champion(uri).churn.features_)
