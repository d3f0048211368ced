"""MBG/NBD maths against the published formulas (Batislam et al. 2007), evaluated here."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import hyp2f1
from sklearn.base import clone

from churnclv import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter
from churnclv.training._btyd import BTYDModels, fit_btyd
from churnclv.training._btyd_select import choose_purchase_model
from churnclv.training._mbgnbd import mbgnbd_loglik_and_grad

R, ALPHA, A, B = 0.5, 5.0, 0.8, 2.5
MODEL = ModifiedBetaGeoFitter.from_params(r=R, alpha=ALPHA, a=A, b=B)


def _beta(p: float, q: float) -> float:
    return math.gamma(p) * math.gamma(q) / math.gamma(p + q)


def _hand_likelihood(x: int, tx: float, big_t: float) -> float:
    """Batislam et al. (2007) eq. 4, written out."""
    return (
        _beta(A, B + x + 1)
        / _beta(A, B)
        * math.gamma(R + x)
        * ALPHA**R
        / math.gamma(R)
        * ((ALPHA + big_t) ** -(R + x) + A / (B + x) * (ALPHA + tx) ** -(R + x))
    )


def _hand_p_alive(x: int, tx: float, big_t: float) -> float:
    return 1.0 / (1.0 + A / (B + x) * ((ALPHA + big_t) / (ALPHA + tx)) ** (R + x))


CASES = [(0, 0.0, 20.0), (1, 4.0, 20.0), (3, 15.0, 30.0), (6, 2.0, 40.0)]


def test_log_likelihood_matches_the_published_formula() -> None:
    x, tx, big_t = (np.array(c, dtype=float) for c in zip(*CASES, strict=True))
    ll, _ = mbgnbd_loglik_and_grad(np.array([R, ALPHA, A, B]), x, tx, big_t)
    expected = [math.log(_hand_likelihood(*c)) for c in CASES]
    np.testing.assert_allclose(ll, expected, rtol=1e-10)


def test_gradient_matches_finite_differences() -> None:
    x, tx, big_t = (np.array(c, dtype=float) for c in zip(*CASES, strict=True))
    params = np.array([R, ALPHA, A, B])
    _, grad = mbgnbd_loglik_and_grad(params, x, tx, big_t)
    for i in range(4):
        step = np.zeros(4)
        step[i] = 1e-6
        up, _ = mbgnbd_loglik_and_grad(params + step, x, tx, big_t)
        down, _ = mbgnbd_loglik_and_grad(params - step, x, tx, big_t)
        np.testing.assert_allclose(grad[i], (up - down) / 2e-6, rtol=1e-5, atol=1e-8)


def test_p_alive_matches_hand_computation_and_one_time_buyers_are_below_one() -> None:
    x, tx, big_t = (np.array(c, dtype=float) for c in zip(*CASES, strict=True))
    p = MODEL.conditional_probability_alive(x, tx, big_t)
    np.testing.assert_allclose(p, [_hand_p_alive(*c) for c in CASES], rtol=1e-12)
    # the one-time buyer of 20 units ago: 1 / (1 + 0.8/2.5 * (25/5)**0.5)
    assert p[0] == pytest.approx(1.0 / (1.0 + 0.32 * math.sqrt(5.0)))
    assert p[0] < 1.0
    bg = BetaGeoFitter.from_params(r=R, alpha=ALPHA, a=A, b=B)
    assert bg.conditional_probability_alive([0], [0], [20])[0] == 1.0


def test_expected_purchases_match_the_published_formula() -> None:
    t = 10.0
    for x, tx, big_t in CASES:
        z = t / (ALPHA + big_t + t)
        alive_mean = (
            (A + B + x)
            / (A - 1)
            * (
                1
                - hyp2f1(R + x, B + x + 1, A + B + x, z)
                * ((ALPHA + big_t) / (ALPHA + big_t + t)) ** (R + x)
            )
        )
        expected = alive_mean * _hand_p_alive(x, tx, big_t)
        got = MODEL.conditional_expected_number_of_purchases_up_to_time(t, [x], [tx], [big_t])[0]
        assert got == pytest.approx(expected, rel=1e-9)


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    """1,500 customers drawn from MBG/NBD (r=0.8, alpha=4, a=1, b=3) over 52 weeks, in days."""
    rng = np.random.default_rng(3)
    n, big_t = 1500, 52.0
    lam = rng.gamma(0.8, 1 / 4.0, n)
    p = rng.beta(1.0, 3.0, n)
    x = np.zeros(n)
    tx = np.zeros(n)
    for i in range(n):  # MBG/NBD: dropout may follow any purchase, the first included
        now = 0.0
        while rng.random() >= p[i]:
            now += rng.exponential(1 / lam[i])
            if now > big_t:
                break
            x[i] += 1
            tx[i] = now
    return pd.DataFrame(
        {
            "frequency": x,
            "recency_days": (big_t - tx) * 7,
            "tenure_days": np.full(n, big_t * 7),
            "monetary_mean": 10.0,
        }
    )


def test_fit_recovers_a_simulated_model_and_clones(simulated: pd.DataFrame) -> None:
    x = simulated["frequency"].to_numpy()
    big_t = simulated["tenure_days"].to_numpy() / 7
    tx = big_t - simulated["recency_days"].to_numpy() / 7
    model = clone(ModifiedBetaGeoFitter(time_unit_days=7.0)).fit(x, tx, big_t)
    assert model.params_["r"] == pytest.approx(0.8, rel=0.3)
    assert model.params_["a"] / (model.params_["a"] + model.params_["b"]) == pytest.approx(
        0.25, abs=0.08
    )
    assert clone(model).get_params() == {"penalizer": 0.0, "time_unit_days": 7.0}


def test_holdout_likelihood_chooses_mbgnbd_on_mbgnbd_data(simulated: pd.DataFrame) -> None:
    choice = choose_purchase_model(simulated)
    assert choice.model == "mbgnbd"
    assert choice.loglik["mbgnbd"] > choice.loglik["bgnbd"]
    assert set(choice.metrics()) == {"btyd_holdout_loglik_bgnbd", "btyd_holdout_loglik_mbgnbd"}


def test_stored_params_name_the_purchase_model() -> None:
    pair = BTYDModels(bgf=MODEL, ggf=GammaGammaFitter.from_params(6.0, 4.0, 15.0))
    params = pair.to_params(90, 365)
    assert params["purchase_model"] == "mbgnbd"
    back = BTYDModels.from_params(params).bgf
    assert isinstance(back, ModifiedBetaGeoFitter) and back.params_ == MODEL.params_
    del params["purchase_model"]  # parameters stored without it are BG/NBD's
    assert type(BTYDModels.from_params(params).bgf) is BetaGeoFitter
    with pytest.raises(ValueError, match="purchase_model"):
        fit_btyd(simulated_rfm_stub(), purchase_model="pareto")


def simulated_rfm_stub() -> pd.DataFrame:
    return pd.DataFrame(
        {"frequency": [1.0], "recency_days": [1.0], "tenure_days": [2.0], "monetary_mean": [1.0]}
    )
