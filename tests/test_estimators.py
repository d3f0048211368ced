"""Every exported estimator honours scikit-learn's contract, and every model is scorable.

``__init__`` stores its parameters unchanged and nothing else, :func:`sklearn.base.clone`
gives an unfitted copy with equal parameters (also of a fitted estimator), and
``set_params`` changes what the next ``fit`` does. The models all have what
:class:`~churnclv.training.ScorableModel` asks for, and round-trip through ``save`` and
:func:`~churnclv.training.load_model` as the class they were saved as.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, clone

from churnclv.training import (
    BetaGeoFitter,
    BoosterModel,
    BTYDModel,
    ChurnModel,
    GammaGammaFitter,
    ScorableModel,
    TwoPartValueModel,
    ValueModel,
    load_model,
)
from churnclv.training._btyd import BTYDModels

CDNOW = {
    "bgnbd": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
    "gamma_gamma": {"p": 6.25, "q": 3.74, "v": 15.44},
    "time_unit_days": 7.0,
}
BTYD = BTYDModels.from_params(CDNOW).to_params(90, 365)

#: Each estimator class with non-default constructor parameters.
ESTIMATORS: list[tuple[type[BaseEstimator], dict[str, Any]]] = [
    (BetaGeoFitter, {"penalizer": 0.01, "time_unit_days": 7.0}),
    (GammaGammaFitter, {"penalizer": 0.02}),
    (BoosterModel, {"kind": "value", "params": {"objective": "tweedie"}, "seed": 5}),
    (ChurnModel, {"seed": 4, "num_boost_round": 30, "params": {"num_leaves": 7}}),
    (ValueModel, {"seed": 4, "num_boost_round": 30, "params": {"num_leaves": 7}}),
    (TwoPartValueModel, {"seed": 2, "spend_objective": "gamma", "num_boost_round": 30}),
    (BTYDModel, {"kind": "value", "btyd": BTYD, "reason": "short history", "seed": 1}),
]


def _frame(n: int = 600) -> tuple[pd.DataFrame, np.ndarray]:
    """A small feature frame (with the BTYD inputs and a categorical) and future spend."""
    rng = np.random.default_rng(0)
    tenure = rng.uniform(30, 700, n)
    frequency = rng.poisson(3.0, n).astype(float)
    recency = np.where(frequency > 0, rng.uniform(0, 1, n) * tenure, tenure)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "frequency": frequency,
            "recency_days": recency,
            "tenure_days": tenure,
            "monetary_mean": rng.gamma(2.0, 20.0, n),
            "plan": rng.choice(["basic", "pro"], n),
        }
    )
    buys = rng.random(n) < 1 / (1 + recency / 100)
    return frame, np.where(buys, frame["monetary_mean"] * (1 + frequency), 0.0)


def _fit(est: Any, frame: pd.DataFrame, y: np.ndarray) -> Any:
    """Fit any of :data:`ESTIMATORS` on the small frame."""
    if isinstance(est, BetaGeoFitter):
        t_x = (frame["tenure_days"] - frame["recency_days"]).where(frame["frequency"] > 0, 0)
        return est.fit(frame["frequency"], t_x / 7, frame["tenure_days"] / 7)
    if isinstance(est, GammaGammaFitter):
        return est.fit(frame["frequency"], frame["monetary_mean"])
    if isinstance(est, (ChurnModel, BTYDModel)) or (
        isinstance(est, BoosterModel) and est.kind == "churn"
    ):
        return est.fit(frame, (y == 0).astype(int))
    return est.fit(frame, y)


def _fitted_attributes(est: Any) -> list[str]:
    return [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]


@pytest.mark.parametrize(("cls", "params"), ESTIMATORS, ids=lambda v: getattr(v, "__name__", ""))
def test_init_stores_its_parameters_unchanged_and_nothing_else(
    cls: type[BaseEstimator], params: dict[str, Any]
) -> None:
    est = cls(**params)
    got = est.get_params()
    for name, value in params.items():
        assert got[name] is value
    assert set(vars(est)) == set(got)  # no fitted or derived state before fit


@pytest.mark.parametrize(("cls", "params"), ESTIMATORS, ids=lambda v: getattr(v, "__name__", ""))
def test_clone_gives_an_unfitted_copy_with_equal_params(
    cls: type[BaseEstimator], params: dict[str, Any]
) -> None:
    frame, y = _frame()
    est = _fit(cls(**params), frame, y)
    assert _fitted_attributes(est)
    copy = clone(est)
    assert type(copy) is cls
    assert copy.get_params() == est.get_params()
    assert not _fitted_attributes(copy)
    assert not any(k.startswith("_") for k in vars(copy))
    # the copy fits to the same result (the seed is a parameter)
    refit = _fit(copy, frame, y)
    if isinstance(refit, (BetaGeoFitter, GammaGammaFitter)):
        assert refit.params_ == est.params_
    else:
        np.testing.assert_array_equal(refit.predict(frame), est.predict(frame))


def test_set_params_changes_what_fit_does() -> None:
    frame, y = _frame()
    a = ChurnModel(seed=0).fit(frame, (y == 0).astype(int))
    b = ChurnModel(seed=0).set_params(seed=1).fit(frame, (y == 0).astype(int))
    assert b.seed == 1 and b.booster_params()["seed"] == 1
    assert not np.array_equal(a.predict(frame), b.predict(frame))


def test_kind_presets_match_the_parameters_they_train_with() -> None:
    """The estimators' LightGBM parameters are the preset, then the seed, then overrides."""
    churn = ChurnModel(seed=3, params={"num_leaves": 7}).booster_params()
    assert churn["objective"] == "binary" and churn["seed"] == 3 and churn["num_leaves"] == 7
    assert churn["monotone_by_feature"]["recency_days"] == 1
    value = ValueModel(seed=3).booster_params()
    assert value["objective"] == "tweedie" and value["tweedie_variance_power"] == 1.3
    parts = TwoPartValueModel(seed=3).booster_params()
    assert parts["buy"]["seed"] == parts["spend"]["seed"] == 3
    assert parts["spend_objective"] == "log_l2"


def test_invalid_parameters_are_rejected_by_fit() -> None:
    frame, y = _frame()
    with pytest.raises(ValueError, match="spend_objective"):
        TwoPartValueModel(spend_objective="poisson").fit(frame, y)
    with pytest.raises(ValueError, match="kind"):
        BTYDModel(kind="margin", btyd=BTYD).fit(frame)
    with pytest.raises(ValueError, match="kind"):
        BoosterModel(kind="margin").fit(frame, y)
    with pytest.raises(ValueError, match="calibrated"):
        ValueModel().fit(frame, y).calibrate(frame, y)


_SCORABLE = [name for name in dir(ScorableModel) if not name.startswith("_")]


@pytest.mark.parametrize(
    "make",
    [
        lambda: ChurnModel(num_boost_round=30),
        lambda: ValueModel(num_boost_round=30),
        lambda: TwoPartValueModel(num_boost_round=30),
        lambda: BTYDModel(kind="churn", btyd=BTYD),
    ],
    ids=["churn", "value", "two_part", "btyd"],
)
def test_every_model_is_scorable_and_loads_as_its_class(make: Any, tmp_path: Path) -> None:
    """The fitted model has every :class:`ScorableModel` member; attached state survives
    ``save`` / ``load_model``, which returns the same class with the same parameters."""
    frame, y = _frame()
    model = _fit(make(), frame, y)
    for name in _SCORABLE:
        assert hasattr(model, name), name
    model.attach(btyd=BTYD, reference={"predicted_value": [0.0, 1.0]}, label_end="2024-01-01")
    x = model.matrix(frame)
    contrib = model.contribution_matrix(x)
    assert contrib.shape == (len(frame), len(model.features_))
    np.testing.assert_array_equal(model.contributions(frame, x).to_numpy(), contrib)
    loaded = load_model(model.save(tmp_path / "m"))
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()  # type: ignore[attr-defined]
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))
    assert loaded.reference_ == {"predicted_value": [0.0, 1.0]}
    assert loaded.btyd_ == BTYD
    assert loaded.label_end_ == "2024-01-01"  # type: ignore[attr-defined]


def test_fit_starts_the_training_record_afresh() -> None:
    """What training attached to a fitted model does not survive a refit."""
    frame, y = _frame()
    model = ValueModel(num_boost_round=30).fit(frame, y).attach(btyd=BTYD, label_end="2024")
    model.fit(frame, y)
    assert model.btyd_ is None and model.label_end_ is None and model.reference_ == {}
