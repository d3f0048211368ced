"""The uplift estimator, policy values, the gate and Qini on tiny hand-built arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from churnclv import UpliftModel
from churnclv.training._policy_value import (
    PolicyValue,
    bootstrap_means,
    evaluate_policies,
    gate,
    policy_rows,
    qini,
)

ARMS = np.array(["control", "coupon", "email"])


def _log(n: int = 2400, seed: int = 0, effect: bool = True):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {"customer_id": [f"C{i}" for i in range(n)], "recency_days": rng.uniform(0, 200, n)}
    )
    arm = rng.choice(ARMS, n)
    true = np.where(frame["recency_days"] > 100, 20.0, -5.0) if effect else np.zeros(n)
    y = rng.normal(30, 5, n) + np.where(arm == "coupon", true, 0.0)
    return frame, arm, y, true


@pytest.mark.parametrize("learner", ["dr", "t"])
def test_learners_recover_known_effects(learner: str) -> None:
    frame, arm, y, true = _log()
    model = UpliftModel(learner=learner, seed=1).fit(frame, arm, y)
    up = model.predict_uplift(frame)
    assert model.actions_ == ["coupon", "email"] and up.shape == (len(frame), 2)
    assert np.corrcoef(up[:, 0], true)[0, 1] > 0.9
    assert abs(up[:, 1].mean()) < 1.5  # email does nothing
    assert model.propensity_clipped_ == 0  # randomized thirds: nothing near the clip
    e = model.predict_propensity(frame.head(3))
    assert np.allclose(e.sum(axis=1), 1, atol=0.05) and np.allclose(e, 1 / 3, atol=0.1)


def test_estimator_contract_and_round_trip(tmp_path) -> None:
    frame, arm, y, _ = _log(600)
    model = UpliftModel(learner="t", num_boost_round=30, seed=2)
    assert clone(model).get_params() == model.get_params()
    assert not hasattr(clone(model), "actions_")
    model.fit(frame, arm, y, propensity=np.full((len(y), 3), 1 / 3))
    loaded = UpliftModel.load(model.save(tmp_path / "m"))
    assert np.allclose(loaded.predict_uplift(frame), model.predict_uplift(frame))
    assert loaded.get_params() == model.get_params()


def test_fit_refuses_a_log_without_control() -> None:
    frame, arm, y, _ = _log(300)
    with pytest.raises(ValueError, match="comparison group"):
        UpliftModel().fit(frame, np.where(arm == "control", "email", arm), y)
    with pytest.raises(ValueError, match="learner"):
        UpliftModel(learner="x").fit(frame, arm, y)


def test_policy_rows_ipw_and_dr_on_a_known_log() -> None:
    arm = np.array([0, 1, 0, 1])
    y = np.array([10.0, 30.0, 20.0, 40.0])
    e = np.full((4, 2), 0.5)
    costs = np.array([0.0, 5.0])
    treat_all = np.ones(4, dtype=int)
    ipw = policy_rows(arm, y, treat_all, costs, e)
    assert ipw.mean() == pytest.approx(35.0 - 15.0 - 5.0)  # E[Y1] - E[Y0] - cost
    mu = np.column_stack([np.full(4, 15.0), np.full(4, 35.0)])
    assert policy_rows(arm, y, treat_all, costs, e, mu).mean() == pytest.approx(15.0)
    assert policy_rows(arm, y, np.zeros(4, int), costs, e, mu).tolist() == [0.0] * 4


def _values(true_gain: np.ndarray, seed: int = 0):
    """A randomized 2-arm log where the action's effect is ``true_gain`` per row."""
    rng = np.random.default_rng(seed)
    n = len(true_gain)
    arm = rng.integers(0, 2, n)
    y = rng.normal(0, 5, n) + np.where(arm == 1, true_gain, 0.0)
    e = np.full((n, 2), 0.5)
    mu = np.column_stack([np.zeros(n), true_gain])
    learned = (true_gain > 1.0).astype(int)
    policies = {"learned": learned, "none": np.zeros(n, int), "coupon": np.ones(n, int)}
    return evaluate_policies(arm, y, policies, np.array([0.0, 1.0]), e, mu, n_boot=200)


def test_gate_keeps_the_learned_policy_only_when_it_wins() -> None:
    hetero = np.tile([10.0, -8.0], 1000)
    values, contrib = _values(hetero)
    decision = gate(values, contrib, ["coupon"], n_boot=200)
    assert decision.basis == "learned" and decision.difference_low > 0
    assert values["learned"].dr_low < values["learned"].dr < values["learned"].dr_high

    uniform = np.full(2000, 6.0)
    values, contrib = _values(uniform)
    decision = gate(values, contrib, ["coupon"], n_boot=200)
    assert (decision.basis, decision.uniform_action) == ("best_uniform", "coupon")

    values, contrib = _values(np.zeros(2000))
    decision = gate(values, contrib, ["coupon"], n_boot=200)
    assert (decision.basis, decision.uniform_action) == ("best_uniform", "none")


def test_qini_ranks_responders_above_random() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    effect = np.tile([10.0, 0.0], n // 2)
    treated = rng.random(n) < 0.5
    y = rng.normal(0, 2, n) + np.where(treated, effect, 0.0)
    good, lo, hi = qini(effect, y, treated, n_boot=100)
    assert lo < good < hi and lo > 0
    noise, lo, hi = qini(rng.random(n), y, treated, n_boot=100)
    assert lo < 0 < hi and noise < good


def test_learned_choice_and_rolling_folds() -> None:
    from churnclv.training._train_uplift import learned_choice
    from churnclv.training._uplift_sends import held_out_folds as _split
    from churnclv.training._uplift_sends import train_mask as _train_mask

    up = np.array([[1.0, 30.0], [0.2, 3.0], [2.0, -1.0]])
    assert learned_choice(up, np.array([0.5, 5.0])).tolist() == [2, 0, 1]
    ts = pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01", "2024-05-01"])
    sends = pd.DataFrame(
        {"customer_id": ["a"] * 5, "ts": ts, "campaign_id": ["c1", "c2", "c3", "c4", "c5"]}
    )
    folds, kind = _split(sends, seed=0)
    assert [np.flatnonzero(f).tolist() for f in folds] == [[2], [3], [4]]
    assert "out of time" in kind
    assert _train_mask(sends, folds[0]).tolist() == [True, True, False, False, False]
    one = sends.assign(campaign_id="c1", customer_id=[f"x{i}" for i in range(5)])
    (mask,), kind = _split(one, seed=0)
    assert "customer-disjoint" in kind
    assert (_train_mask(one, mask) == ~mask).all()


def test_gate_wants_the_learned_policy_to_beat_every_constant_policy() -> None:
    # No constant action pays beyond noise, so the best constant is "none"; the learned
    # policy beats "none" clearly but cannot be told from giving everyone the coupon.
    n = 1000
    coupon = np.tile([41.0, -39.0], n // 2)
    contrib = {"learned": np.full(n, 1.5), "none": np.zeros(n), "coupon": coupon}
    values = {}
    for name, c in contrib.items():
        low, high = np.percentile(bootstrap_means(c, n_boot=200)[:, 0], [2.5, 97.5])
        values[name] = PolicyValue(name, float(c.mean()), float(low), float(high), 0, 0, 0)
    assert values["coupon"].dr_low < 0
    decision = gate(values, contrib, ["coupon"], n_boot=200)
    assert (decision.basis, decision.uniform_action) == ("best_uniform", "none")
    assert "coupon" in decision.reason


def test_effects_in_units_of_the_basket_come_back_in_currency(tmp_path) -> None:
    """A coupon that adds a third of an order: the model learns it per unit of basket
    (``monetary_mean``) and answers in currency; saving keeps the unit and its floor."""
    rng = np.random.default_rng(3)
    n = 3000
    basket = rng.choice([10.0, 100.0], n)
    frame = pd.DataFrame({"customer_id": [f"C{i}" for i in range(n)], "monetary_mean": basket})
    arm = rng.choice(["control", "coupon"], n)
    y = basket * (rng.poisson(1.0, n) + np.where(arm == "coupon", 1 / 3, 0.0))
    model = UpliftModel(learner="t", seed=0).fit(frame, arm, y)
    assert model.scale_feature_ == "monetary_mean" and model.scale_floor_ == 10.0
    up = model.predict_uplift(pd.DataFrame({"monetary_mean": [10.0, 100.0, 0.0]}))[:, 0]
    assert 1.5 < up[0] < 5 and 15 < up[1] < 50  # the truth: 3.33 and 33.3
    assert up[2] == pytest.approx(up[0])  # no basket yet: the floor's unit
    mu = model.predict_outcomes(pd.DataFrame({"monetary_mean": [100.0]}))
    assert 80 < mu[0, 0] < 120  # outcome levels in currency too (one order of 100)
    loaded = UpliftModel.load(model.save(tmp_path / "m"))
    assert (loaded.scale_feature_, loaded.scale_floor_) == ("monetary_mean", 10.0)
    plain = UpliftModel(learner="t", scale=None, seed=0).fit(frame, arm, y)
    assert plain.scale_feature_ is None and plain.scale_floor_ == 1.0


def test_sends_see_the_event_vocabulary_and_the_model_keeps_it(tmp_path) -> None:
    """Features of the sends use the chosen event types; the model records them, so
    scoring computes the same columns."""
    from churnclv import InputTables
    from churnclv.features._vocabulary import model_vocabulary
    from churnclv.training._uplift_sends import send_features

    tx = pd.DataFrame(
        {
            "customer_id": ["A", "B"],
            "ts": pd.to_datetime(["2024-01-02", "2024-01-03"]),
            "amount": [10.0, 20.0],
        }
    )
    ev = pd.DataFrame(
        {
            "customer_id": ["A", "A", "B"],
            "ts": pd.to_datetime(["2024-01-05", "2024-01-06", "2024-02-10"]),
            "event_type": ["app_open", "app_open", "app_open"],
        }
    )
    sends = pd.DataFrame(
        {"customer_id": ["A", "B"], "ts": pd.to_datetime(["2024-02-01 09:00"] * 2)}
    )
    frame, rows = send_features(InputTables(tx, ev), sends, (("app_open",), ()))
    assert rows.tolist() == [0, 1]
    assert frame["ev_app_open_30d"].tolist() == [2, 0]  # B's open comes after the send
    assert "ev_login_30d" not in frame.columns
    log, arm, y, _ = _log(600)
    model = UpliftModel(learner="t", num_boost_round=20, seed=0).fit(log, arm, y)
    model.event_vocabulary_ = {"event_types": ["app_open"], "valued_event_types": []}
    loaded = UpliftModel.load(model.save(tmp_path / "m"))
    assert model_vocabulary(loaded) == (("app_open",), ())
