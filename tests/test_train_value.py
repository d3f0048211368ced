"""The value model: two-part P(buy) x E[spend | buy] vs Tweedie, chosen on an inner fold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnclv.training import (
    VALUE_MODEL,
    ChurnModel,
    TwoPartValueModel,
    ValueModel,
    load_champion,
    load_model,
    tracking_uri_for,
)
from churnclv.training._fit import select_value_model as _select_value_model


def _hand_frame(n: int = 3000, shift: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Three groups of ``n`` customers whose future spend is known by construction.

    Group 0 never buys. In group 1 every other customer buys, spending 50 or 150
    (mean 100), so P(buy) = 0.5 and E[spend | buy] = 100. Group 2 always buys, two
    amounts with mean 10 whose ``1 + spend`` have the same ratio as group 1's (equal
    spread on the log scale, so one smearing factor is right for both groups).
    """
    g = np.repeat([0, 1, 2], n)
    y = np.zeros(3 * n)
    buyers = np.flatnonzero(g == 1)[::2]
    y[buyers] = np.where(np.arange(len(buyers)) % 2 == 0, 50.0, 150.0)
    low = 22.0 / (1.0 + 151.0 / 51.0) - 1.0  # (1 + high) / (1 + low) = 151 / 51, mean 10
    y[g == 2] = np.where(np.arange(n) % 2 == 0, low, 20.0 - low)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i + shift:05d}" for i in range(3 * n)],
            "group": g.astype(float),
        }
    )
    return frame, y


def test_two_part_is_p_buy_times_mean_spend_of_buyers() -> None:
    """On hand-built groups the parts recover P(buy) and the buyers' mean spend, and the
    prediction is their product (a spend part fitted on non-buyers too, or without the
    smearing correction, would predict about half or 88% of it)."""
    frame, y = _hand_frame()
    model = TwoPartValueModel(seed=0).fit(frame, y)
    probe = pd.DataFrame({"customer_id": ["a", "b", "c"], "group": [0.0, 1.0, 2.0]})
    p, m = model.predict_parts(probe)
    np.testing.assert_allclose(model.predict(probe), p * m)
    assert p[0] < 0.02
    assert abs(p[1] - 0.5) < 0.05
    assert p[2] > 0.98
    assert abs(m[1] - 100.0) < 5.0
    assert abs(m[2] - 10.0) < 0.5
    pred = model.predict(probe)
    assert pred[0] < 1.0
    assert abs(pred[1] - 50.0) < 5.0
    assert abs(pred[2] - 10.0) < 1.0


def test_two_part_round_trips_save_load(tmp_path: Path) -> None:
    """Saved as two LightGBM text files + schema.json, it loads with identical predictions."""
    frame, y = _hand_frame()
    model = TwoPartValueModel(seed=3).fit(frame, y)
    model.reference_ = {"predicted_value": [0.0, 1.0]}
    folder = model.save(tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["buy.txt", "schema.json", "spend.txt"]
    loaded = load_model(folder)
    assert isinstance(loaded, TwoPartValueModel)
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))
    pd.testing.assert_frame_equal(loaded.contributions(frame), model.contributions(frame))
    assert loaded.reference_ == model.reference_
    assert list(loaded.importance().index) == list(model.importance().index)


def test_two_part_predictions_are_finite_and_non_negative() -> None:
    """Missing, extreme and unseen inputs still give finite values >= 0."""
    frame, y = _hand_frame()
    model = TwoPartValueModel(seed=0).fit(frame, y)
    odd = pd.DataFrame(
        {
            "customer_id": list("abcde"),
            "group": [np.nan, -1e12, 1e12, 1.5, 0.0],
        }
    )
    pred = np.concatenate([model.predict(frame), model.predict(odd)])
    assert np.isfinite(pred).all()
    assert (pred >= 0).all()


def test_two_part_refuses_too_few_buyers() -> None:
    """Without enough buyers to fit the spend part it says so (training then keeps Tweedie)."""
    frame, y = _hand_frame()
    y = np.where(np.arange(len(y)) < 20, 5.0, 0.0)
    with pytest.raises(ValueError, match="buyers"):
        TwoPartValueModel().fit(frame, y)


def _heavy_tailed_frame(n: int = 6000) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers in four groups; 70% buy nothing, buyers spend lognormal (sigma 1.5)."""
    rng = np.random.default_rng(4)
    g = rng.integers(0, 4, n).astype(float)
    buy = rng.random(n) < 0.3
    y = np.where(buy, rng.lognormal(3.0 + 0.5 * g, 1.5), 0.0)
    return pd.DataFrame({"customer_id": [f"C{i:05d}" for i in range(n)], "group": g}), y


def test_tweedie_value_model_predicts_the_actual_total_of_its_training_rows(
    tmp_path: Path,
) -> None:
    """The Tweedie booster's predictions are rescaled so that their total over its training
    rows equals the actual total (the boosted fit alone is measurably low on heavy-tailed
    spend), the scale survives save/load, and a churn model is never rescaled."""
    frame, y = _heavy_tailed_frame()
    model = ValueModel(seed=0).fit(frame, y)
    raw_ratio = model.predict_raw(frame).sum() / y.sum()
    assert abs(raw_ratio - 1) > 0.01  # the booster alone misses the total
    assert model.predict(frame).sum() / y.sum() == pytest.approx(1.0, rel=1e-9)
    np.testing.assert_allclose(model.predict(frame), model.predict_raw(frame) * model.level_)
    loaded = load_model(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))
    churn = ChurnModel(seed=0).fit(frame, (y == 0).astype(int))
    assert churn.level_ == 1.0


def test_value_selection_is_deterministic_and_uses_the_latest_training_cutoff() -> None:
    """The choice is made on the latest training cutoff, and the same seed repeats it."""
    early, y_early = _hand_frame(shift=0)
    late, y_late = _hand_frame(shift=10_000)
    rows = pd.concat(
        [
            early.assign(as_of=pd.Timestamp("2023-01-01"), future_value=y_early),
            late.assign(as_of=pd.Timestamp("2023-02-01"), future_value=y_late),
        ],
        ignore_index=True,
    )
    first = _select_value_model(rows, 7, lambda _msg: None)
    again = _select_value_model(rows, 7, lambda _msg: None)
    assert first == again
    kind, metrics, params = first
    assert kind in ("tweedie", "two_part")
    assert params["value_selection_cutoff"] == "2023-02-01"
    assert params["n_value_selection_fold"] == str(len(late))
    for name in ("tweedie", "two_part"):
        assert np.isfinite(metrics[f"value_candidate_{name}_gini"])
        assert np.isfinite(metrics[f"value_candidate_{name}_total_ratio"])


@pytest.mark.slow
def test_train_records_and_registers_the_winning_value_model(demo_workdir: Path) -> None:
    """The run logs both candidates' fold metrics and `value_model_kind`; the registered
    value model is of that kind and the choice follows the logged Gini / ratio rule."""
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri_for(demo_workdir)
    mlflow.set_tracking_uri(uri)
    # the training run (the demo's uplift run is in the same experiment)
    run = mlflow.search_runs(
        experiment_names=["churnclv"], filter_string="attributes.run_name LIKE 'train %'"
    ).iloc[0]
    kind = run["params.value_model_kind"]
    assert kind in ("tweedie", "two_part")
    g = {k: run[f"metrics.value_candidate_{k}_gini"] for k in ("tweedie", "two_part")}
    r = {k: abs(run[f"metrics.value_candidate_{k}_total_ratio"] - 1) for k in g}
    se = run["metrics.value_candidate_gini_diff_se"]
    other = "two_part" if kind == "tweedie" else "tweedie"
    if abs(g[kind] - g[other]) > se:
        assert g[kind] > g[other]
    else:
        assert r[kind] <= r[other]
    champ = load_champion(uri)
    expected = TwoPartValueModel if kind == "two_part" else type(ValueModel())
    assert type(champ.value) is expected
    client = MlflowClient(uri, uri)
    assert client.get_model_version(VALUE_MODEL, champ.value_version).tags["model_kind"] == kind


@pytest.mark.slow
def test_registered_value_model_is_refitted_through_the_validation_cutoff(
    demo_workdir: Path,
) -> None:
    """The champion value model learned from labels up to as_of (refitted on the latest
    cutoffs, the validation cutoff included) and carries the out-of-time evaluation the run
    logged, which was measured before the refit."""
    import mlflow

    uri = tracking_uri_for(demo_workdir)
    mlflow.set_tracking_uri(uri)
    run = mlflow.search_runs(
        experiment_names=["churnclv"], filter_string="attributes.run_name LIKE 'train %'"
    ).iloc[0]
    valid = run["params.value_validation_cutoff"]
    refit = run["params.value_refit_cutoffs"].split(",")
    assert refit[-1] == valid
    assert int(run["params.n_refit_value"]) > int(run["params.n_valid_value"])
    champ = load_champion(uri)
    horizon = float(run["params.value_horizon_days"])
    assert champ.value.label_end_ == str((pd.Timestamp(valid) + pd.Timedelta(days=horizon)).date())
    assert champ.value.evaluation_ == {
        "cutoff": valid,
        "rows": int(run["params.n_valid_value"]),
        "metric": "value_gini",
        "value": pytest.approx(run["metrics.value_gini"]),
    }
    # the churn model is not refitted: its labels end by the validation cutoff
    assert pd.Timestamp(champ.churn.label_end_) <= pd.Timestamp(
        run["params.churn_validation_cutoff"]
    )


class _Fitted:
    """A stand-in champion: one feature, a fixed prediction, training provenance."""

    def __init__(self, label_end: str | None, evaluation: dict | None) -> None:
        self.features_ = ["x"]
        self.label_end_ = label_end
        self.evaluation_ = evaluation

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return frame["x"].to_numpy(float)


def test_a_champion_fitted_on_the_validation_labels_is_judged_by_its_own_evaluation() -> None:
    """Scored on rows whose labels it learned from, a champion would look better than it
    is: the gate uses the out-of-time evaluation it recorded on the same window, and calls
    it incomparable when there is none for this window."""
    from churnclv.training._registry import _champion_score

    rows = pd.DataFrame({"as_of": pd.Timestamp("2023-01-01"), "x": np.arange(200.0)})
    y = np.arange(200.0)  # in sample, the champion ranks perfectly
    same = {"cutoff": "2023-01-01", "rows": 200, "metric": "value_gini", "value": 0.61}
    assert _champion_score(_Fitted("2024-01-01", same), rows, y, "value") == 0.61
    other = {**same, "cutoff": "2022-12-01"}
    why = _champion_score(_Fitted("2024-01-01", other), rows, y, "value")
    assert isinstance(why, str) and "cannot be judged" in why
    # labels ending by the validation cutoff: scored on the rows as before
    assert _champion_score(_Fitted("2023-01-01", None), rows, y, "value") == pytest.approx(1.0)
    assert _champion_score(_Fitted(None, None), rows, y, "value") == pytest.approx(1.0)
