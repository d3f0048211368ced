"""Tests of our BG/NBD and Gamma-Gamma implementations and the BTYD feature helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from churnclv.training import BetaGeoFitter, GammaGammaFitter
from churnclv.training._bgnbd import _alive_mean_quadrature
from churnclv.training._btyd import BTYDModels, apply_btyd, btyd_features, fit_btyd

# FHL (2005) CDNOW estimates, in weeks; Fader & Hardie (2013) Gamma-Gamma CDNOW estimates.
CDNOW = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
CDNOW_GG = {"p": 6.25, "q": 3.74, "v": 15.44}


def simulate_bgnbd(
    n: int, r: float, alpha: float, a: float, b: float, seed: int, t_low=39.0, t_high=78.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw (x, t_x, T) from BG/NBD: x = min(Poisson(lambda T), Geometric(p)) repeat purchases."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    big_t = rng.uniform(t_low, t_high, n)
    n_arrivals = rng.poisson(lam * big_t)
    x = np.minimum(n_arrivals, rng.geometric(p))
    tx = np.zeros(n)
    pos = x > 0
    # the x-th of N uniform arrival times on (0, T] is T * Beta(x, N - x + 1)
    tx[pos] = big_t[pos] * rng.beta(x[pos], n_arrivals[pos] - x[pos] + 1)
    return x.astype(float), tx, big_t


def simulate_gamma_gamma(
    n: int, p: float, q: float, v: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw (x, mean spend, true nu) from Gamma-Gamma with x = 1 + Poisson(3) transactions."""
    rng = np.random.default_rng(seed)
    x = 1 + rng.poisson(3.0, n)
    nu = rng.gamma(q, 1.0 / v, n)
    mean_spend = rng.gamma(p * x, 1.0 / (x * nu))
    return x.astype(float), mean_spend, nu


@pytest.fixture(scope="module")
def cdnow_like() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return simulate_bgnbd(20_000, **CDNOW, seed=1)


@pytest.fixture(scope="module")
def fitted_cdnow_like(cdnow_like) -> BetaGeoFitter:
    return BetaGeoFitter().fit(*cdnow_like)


def rfm_frame(n: int = 3000, seed: int = 3) -> pd.DataFrame:
    x, tx, big_t = simulate_bgnbd(n, **CDNOW, seed=seed)
    tx_days, t_days = np.round(tx * 7.0), np.round(big_t * 7.0)
    tx_days = np.where(x == 0, 0.0, np.minimum(tx_days, t_days))
    xg = np.maximum(x, 1.0)
    rng = np.random.default_rng(seed)
    spend = rng.gamma(6.0 * xg, 1.0 / (xg * rng.gamma(3.74, 1 / 15.44, n)))
    return pd.DataFrame(
        {
            "frequency": x,
            "recency_days": t_days - tx_days,
            "tenure_days": t_days,
            "monetary_mean": spend,
        },
        index=pd.Index([f"c{i}" for i in range(n)], name="customer_id"),
    )


# --------------------------------------------------------------------------- BG/NBD values


def test_published_conditional_expectation():
    """FHL (2005): a customer with x=2, t_x=30.43, T=38.86 expects 1.226 purchases in 39 weeks."""
    bgf = BetaGeoFitter(time_unit_days=7.0)
    bgf.params_ = dict(CDNOW)
    value = bgf.conditional_expected_number_of_purchases_up_to_time(39, 2, 30.43, 38.86)
    assert round(float(value), 3) == 1.226


def test_unconditional_expectation_matches_simulation():
    """E[X(t)] of a new customer matches the mean repeat count of customers simulated over t."""
    bgf = BetaGeoFitter.from_params(**CDNOW)
    x, _, _ = simulate_bgnbd(200_000, **CDNOW, seed=7, t_low=52.0, t_high=52.0)
    expected = float(bgf.expected_number_of_purchases_up_to_time(52.0))
    assert expected == pytest.approx(x.mean(), rel=0.03)


def test_hyp2f1_formula_matches_quadrature():
    """The Euler-transformed eq. (10) agrees with direct quadrature over the dropout posterior."""
    r, alpha, a, b = CDNOW.values()
    bgf = BetaGeoFitter.from_params(r, alpha, a, b)
    t = np.array([1.0, 39.0, 10.0, 52.0, 5.0])
    x = np.array([0.0, 2.0, 10.0, 50.0, 300.0])
    tx = np.array([0.0, 30.43, 20.0, 59.0, 100.0])
    big_t = np.array([20.0, 38.86, 40.0, 60.0, 100.0])
    closed = bgf.conditional_expected_number_of_purchases_up_to_time(t, x, tx, big_t)
    p_alive = bgf.conditional_probability_alive(x, tx, big_t)
    quad = p_alive * _alive_mean_quadrature(t, x, big_t, r, alpha, a, b)
    np.testing.assert_allclose(closed, quad, rtol=1e-6)


def test_expectation_continuous_through_a_equal_one():
    """Predictions are continuous across the removable singularity a == 1."""
    args = (39.0, np.array([0.0, 3.0, 40.0]), np.array([0.0, 20.0, 35.0]), np.array([40.0] * 3))
    values = [
        BetaGeoFitter.from_params(
            0.5, 4.0, a, 2.0
        ).conditional_expected_number_of_purchases_up_to_time(*args)
        for a in (1.0 - 2e-3, 1.0 - 1e-9, 1.0, 1.0 + 1e-9, 1.0 + 2e-3)
    ]
    for v in values[1:]:
        np.testing.assert_allclose(v, values[0], rtol=1e-2)
    np.testing.assert_allclose(values[2], values[1], rtol=1e-8)


@pytest.mark.parametrize(
    "params",
    [
        CDNOW,
        {"r": 5.0, "alpha": 0.1, "a": 0.05, "b": 0.01},
        {"r": 0.01, "alpha": 500.0, "a": 20.0, "b": 0.5},
    ],
)
def test_expected_purchases_finite_for_extreme_inputs(params):
    """Expected purchases stay finite and >= 0 for x up to 500, T up to 5000, long horizons."""
    bgf = BetaGeoFitter.from_params(**params)
    x = np.array([0.0, 1.0, 500.0, 500.0, 500.0, 250.0, 100.0])
    big_t = np.array([5000.0, 5000.0, 5000.0, 1.0, 0.5, 5000.0, 5000.0])
    tx = np.array([0.0, 0.0, 5000.0, 1.0, 0.5, 1.0, 4999.0])
    for t in (1e-3, 1.0, 39.0, 1e4, 1e6):
        expected = bgf.conditional_expected_number_of_purchases_up_to_time(t, x, tx, big_t)
        p_none = bgf.probability_no_purchase_up_to_time(t, x, tx, big_t)
        assert np.all(np.isfinite(expected)) and np.all(expected >= 0)
        assert np.all((p_none >= 0) & (p_none <= 1))


def test_p_alive_is_one_without_repeat_purchases():
    """Under BG/NBD a customer with no repeat purchase is alive with probability exactly 1."""
    bgf = BetaGeoFitter.from_params(**CDNOW)
    np.testing.assert_array_equal(
        bgf.conditional_probability_alive([0, 0], [0, 0], [1.0, 1000.0]), [1.0, 1.0]
    )


params_strategy = st.fixed_dictionaries(
    {
        "r": st.floats(0.05, 10.0),
        "alpha": st.floats(0.1, 100.0),
        "a": st.floats(0.05, 10.0),
        "b": st.floats(0.05, 20.0),
    }
)


@settings(max_examples=60, deadline=None)
@given(
    params=params_strategy,
    x=st.integers(1, 500),
    big_t=st.floats(0.5, 5000.0),
    u1=st.floats(0.0, 1.0),
    u2=st.floats(0.0, 1.0),
)
def test_p_alive_bounded_and_decreasing_in_gap(params, x, big_t, u1, u2):
    """P(alive) lies in [0, 1] and does not increase as the gap T - t_x grows (x, T fixed)."""
    bgf = BetaGeoFitter.from_params(**params)
    recent, older = max(u1, u2) * big_t, min(u1, u2) * big_t
    p_recent, p_older = bgf.conditional_probability_alive([x, x], [recent, older], [big_t, big_t])
    assert 0.0 <= p_older <= p_recent <= 1.0


@settings(max_examples=60, deadline=None)
@given(
    params=params_strategy,
    x=st.integers(0, 200),
    big_t=st.floats(1.0, 500.0),
    u=st.floats(0.0, 1.0),
    t=st.floats(0.01, 200.0),
)
def test_no_purchase_probability_bounded_and_below_markov(params, x, big_t, u, t):
    """P(no purchase) is in [0, 1] and P(at least one) <= E[purchases] (Markov's inequality)."""
    bgf = BetaGeoFitter.from_params(**params)
    tx = 0.0 if x == 0 else u * big_t
    p_none = float(bgf.probability_no_purchase_up_to_time(t, x, tx, big_t))
    expected = float(bgf.conditional_expected_number_of_purchases_up_to_time(t, x, tx, big_t))
    assert 0.0 <= p_none <= 1.0
    assert 1.0 - p_none <= expected * (1 + 1e-6) + 1e-12


def test_no_purchase_probability_matches_simulation():
    """P(no purchase in (T, T+t]) of the FHL example customer matches a posterior simulation."""
    r, alpha, a, b = CDNOW.values()
    x, tx, big_t, t = 2, 30.43, 38.86, 20.0
    bgf = BetaGeoFitter.from_params(r, alpha, a, b)
    p_alive = float(bgf.conditional_probability_alive(x, tx, big_t))
    rng = np.random.default_rng(0)
    n = 400_000
    alive = rng.random(n) < p_alive
    lam = rng.gamma(r + x, 1.0 / (alpha + big_t), n)  # posterior rate given alive
    no_buy = ~alive | (rng.exponential(1.0, n) / lam > t)
    predicted = float(bgf.probability_no_purchase_up_to_time(t, x, tx, big_t))
    assert predicted == pytest.approx(no_buy.mean(), abs=0.005)


# --------------------------------------------------------------------------- BG/NBD fitting


def test_bgnbd_parameter_recovery(fitted_cdnow_like):
    """Fitting 20k simulated customers recovers r and alpha within 15% and a, b within 30%."""
    fitted = fitted_cdnow_like.params_
    assert fitted["r"] == pytest.approx(CDNOW["r"], rel=0.15)
    assert fitted["alpha"] == pytest.approx(CDNOW["alpha"], rel=0.15)
    assert fitted["a"] == pytest.approx(CDNOW["a"], rel=0.30)
    assert fitted["b"] == pytest.approx(CDNOW["b"], rel=0.30)
    assert fitted_cdnow_like.converged_


def test_fit_follows_estimator_contract(cdnow_like):
    """fit returns self, keeps hyper-parameters unchanged and clones to an unfitted copy."""
    bgf = BetaGeoFitter(penalizer=0.0, time_unit_days=7.0)
    assert bgf.fit(*cdnow_like) is bgf
    assert bgf.get_params() == {"penalizer": 0.0, "time_unit_days": 7.0}
    assert {"r", "alpha", "a", "b"} == set(bgf.params_)
    assert bgf.r_ == bgf.params_["r"] and bgf.b_ == bgf.params_["b"]
    with pytest.raises(RuntimeError, match="not fitted"):
        clone(bgf).conditional_probability_alive(1, 1, 2)


def test_weights_equal_repeated_rows(cdnow_like):
    """Fitting with integer weights gives the same parameters as repeating the rows."""
    x, tx, big_t = (c[:2000] for c in cdnow_like)
    w = np.tile([1.0, 2.0, 3.0], 700)[:2000]
    rep = np.repeat(np.arange(2000), w.astype(int))
    by_weight = BetaGeoFitter().fit(x, tx, big_t, weights=w).params_
    by_rows = BetaGeoFitter().fit(x[rep], tx[rep], big_t[rep]).params_
    for key, value in by_weight.items():
        assert value == pytest.approx(by_rows[key], rel=1e-4)


def test_penalizer_shrinks_parameters(cdnow_like):
    """A positive penalizer lowers the sum of squared parameters."""
    plain = BetaGeoFitter().fit(*cdnow_like).params_
    shrunk = BetaGeoFitter(penalizer=0.1).fit(*cdnow_like).params_
    assert sum(v**2 for v in shrunk.values()) < sum(v**2 for v in plain.values())


def test_converges_with_one_time_buyers_and_heavy_buyers():
    """Many one-time buyers plus a few very heavy buyers give finite parameters and predictions."""
    rng = np.random.default_rng(5)
    n_once, n_heavy = 20_000, 25
    x = np.concatenate([np.zeros(n_once), rng.integers(150, 400, n_heavy).astype(float)])
    big_t = np.concatenate([rng.uniform(1, 52, n_once), np.full(n_heavy, 52.0)])
    tx = np.concatenate([np.zeros(n_once), rng.uniform(50, 52, n_heavy)])
    for penalizer in (0.0, 0.01):
        bgf = BetaGeoFitter(penalizer=penalizer).fit(x, tx, big_t)
        assert all(np.isfinite(v) and v > 0 for v in bgf.params_.values())
        e = bgf.conditional_expected_number_of_purchases_up_to_time(52.0, x, tx, big_t)
        p_alive = bgf.conditional_probability_alive(x, tx, big_t)
        p_none = bgf.probability_no_purchase_up_to_time(52.0, x, tx, big_t)
        assert np.all(np.isfinite(e)) and np.all(e >= 0)
        assert np.all((p_alive >= 0) & (p_alive <= 1))
        assert np.all((p_none >= 0) & (p_none <= 1))
        assert e[-n_heavy:].mean() > 10 * e[:n_once].mean()


@pytest.mark.parametrize(
    ("frequency", "recency", "big_t", "name"),
    [
        ([1.0, -1.0], [1.0, 0.0], [2.0, 2.0], "frequency"),
        ([1.0, 1.0], [1.0, -0.5], [2.0, 2.0], "recency"),
        ([1.0, 1.0], [1.0, 1.0], [2.0, -2.0], "T"),
        ([1.0, np.nan], [1.0, 0.0], [2.0, 2.0], "frequency"),
        ([1.0, 1.0], [np.nan, 1.0], [2.0, 2.0], "recency"),
        ([1.0, 1.0], [1.0, 1.0], [2.0, np.inf], "T"),
        ([1.0, 1.0], [3.0, 1.0], [2.0, 2.0], "recency must be <= T"),
        ([0.0, 1.0], [1.0, 1.0], [2.0, 2.0], "recency must be 0 where frequency is 0"),
    ],
)
def test_invalid_bgnbd_inputs_raise(frequency, recency, big_t, name):
    """Negative, NaN/inf, recency > T or recency with x == 0 raise a ValueError naming the issue."""
    with pytest.raises(ValueError, match=name):
        BetaGeoFitter().fit(frequency, recency, big_t)
    bgf = BetaGeoFitter.from_params(**CDNOW)
    with pytest.raises(ValueError, match=name):
        bgf.conditional_probability_alive(frequency, recency, big_t)


def test_invalid_bgnbd_inputs_report_indices():
    """The validation message lists the offending indices."""
    with pytest.raises(ValueError, match=r"indices \[2, 4\]"):
        BetaGeoFitter().fit([1, 1, -1, 1, -2], [0.5] * 5, [1.0] * 5)


def test_data_without_repeat_purchases_raises():
    """A sample without any repeat purchase is rejected as unidentified."""
    with pytest.raises(ValueError, match="not identified"):
        BetaGeoFitter().fit([0, 0, 0], [0, 0, 0], [5, 6, 7])


# --------------------------------------------------------------------------- Gamma-Gamma


def test_gamma_gamma_parameter_recovery():
    """Fitting 20k simulated spends recovers p, q and v within 15%."""
    x, spend, _ = simulate_gamma_gamma(20_000, **CDNOW_GG, seed=11)
    ggf = GammaGammaFitter().fit(x, spend)
    for key, true in CDNOW_GG.items():
        assert ggf.params_[key] == pytest.approx(true, rel=0.15)
    assert ggf.converged_ and ggf.n_ignored_ == 0


def test_gamma_gamma_conditional_mean_shrinks_towards_population():
    """Expected spend is a weighted average of the observed mean and the population mean."""
    ggf = GammaGammaFitter.from_params(**CDNOW_GG)
    pop = ggf.population_mean_spend()
    assert pop == pytest.approx(6.25 * 15.44 / 2.74)
    values = ggf.conditional_expected_average_profit([0, 1, 10, 1000], [500.0, 100.0, 100.0, 100.0])
    assert values[0] == pytest.approx(pop)
    assert pop < values[1] < values[2] < values[3] < 100.0 + 1e-9
    assert values[3] == pytest.approx(100.0, rel=0.01)


def test_gamma_gamma_ignores_unusable_rows():
    """Rows with frequency 0 or non-positive spend are ignored, not used, and counted."""
    x, spend, _ = simulate_gamma_gamma(3000, **CDNOW_GG, seed=12)
    base = GammaGammaFitter().fit(x, spend)
    padded = GammaGammaFitter().fit(np.r_[x, 0.0, 2.0], np.r_[spend, 10.0, -5.0])
    assert padded.n_ignored_ == 2 and padded.n_used_ == 3000
    for key, value in base.params_.items():
        assert padded.params_[key] == pytest.approx(value, rel=1e-6)


def test_gamma_gamma_invalid_inputs_raise():
    """NaN spend or negative frequency raise ValueError naming the argument; so does q <= 1."""
    with pytest.raises(ValueError, match="monetary_value"):
        GammaGammaFitter().fit([1, 2, 3, 4], [1.0, np.nan, 2.0, 3.0])
    with pytest.raises(ValueError, match="frequency"):
        GammaGammaFitter().fit([1, -2, 3, 4], [1.0, 2.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="q <= 1"):
        GammaGammaFitter.from_params(2.0, 0.9, 3.0).conditional_expected_average_profit(1, 5.0)


def test_clv_undiscounted_and_discounted():
    """Undiscounted CLV is expected purchases times expected spend; discounting lowers it."""
    bgf = BetaGeoFitter.from_params(**CDNOW, time_unit_days=7.0)
    ggf = GammaGammaFitter.from_params(**CDNOW_GG)
    args = (np.array([0.0, 2.0, 10.0]), np.array([0.0, 30.43, 35.0]), np.array([38.86] * 3))
    spend = np.array([20.0, 30.0, 40.0])
    clv = ggf.customer_lifetime_value(bgf, *args, spend, time_days=365.0)
    expected = bgf.conditional_expected_number_of_purchases_up_to_time(365.0 / 7.0, *args)
    np.testing.assert_allclose(
        clv, expected * ggf.conditional_expected_average_profit(args[0], spend), rtol=1e-12
    )
    discounted = ggf.customer_lifetime_value(
        bgf, *args, spend, time_days=365.0, discount_rate_per_day=0.0005
    )
    assert np.all(discounted < clv) and np.all(discounted > clv * (1.0005**-365.0))


def test_time_unit_is_explicit():
    """A model in days (alpha x 7) gives the same CLV as the weekly model for a horizon in days."""
    weeks = BetaGeoFitter.from_params(**CDNOW, time_unit_days=7.0)
    days = BetaGeoFitter.from_params(**{**CDNOW, "alpha": CDNOW["alpha"] * 7}, time_unit_days=1.0)
    ggf = GammaGammaFitter.from_params(**CDNOW_GG)
    x, tx_w, t_w = np.array([0.0, 2.0, 7.0]), np.array([0.0, 30.43, 20.0]), np.full(3, 38.86)
    by_week = ggf.customer_lifetime_value(
        weeks, x, tx_w, t_w, [10.0, 20.0, 30.0], 180.0, discount_rate_per_day=0.001
    )
    by_day = ggf.customer_lifetime_value(
        days, x, tx_w * 7, t_w * 7, [10.0, 20.0, 30.0], 180.0, discount_rate_per_day=0.001
    )
    np.testing.assert_allclose(by_week, by_day, rtol=1e-9)


# --------------------------------------------------------------------------- features


def test_btyd_features_columns_and_ranges():
    """btyd_features returns the five documented columns on the input index with valid ranges."""
    rfm = rfm_frame()
    rfm.loc[rfm.index[:5], "monetary_mean"] = [0.0, -3.0, 0.0, -1.0, 0.0]
    out = btyd_features(rfm, horizon_days=90.0)
    assert list(out.columns) == [
        "btyd_p_alive",
        "btyd_expected_purchases",
        "btyd_p_no_purchase",
        "btyd_expected_spend",
        "btyd_clv",
    ]
    assert out.index.equals(rfm.index)
    assert np.isfinite(out.to_numpy()).all()
    assert out["btyd_p_alive"].between(0, 1).all() and out["btyd_p_no_purchase"].between(0, 1).all()
    assert (1 - out["btyd_p_no_purchase"] <= out["btyd_expected_purchases"] + 1e-9).all()
    models = fit_btyd(rfm)
    pop = models.ggf.population_mean_spend()
    np.testing.assert_allclose(out["btyd_expected_spend"].iloc[:5], pop)
    np.testing.assert_allclose(
        out["btyd_clv"], out["btyd_expected_purchases"] * out["btyd_expected_spend"]
    )


def test_btyd_features_with_fitted_models_do_not_refit():
    """Passing fitted models scores a new window with them instead of refitting."""
    train, score = rfm_frame(seed=3), rfm_frame(n=500, seed=4)
    models = fit_btyd(train, time_unit_days=7.0)
    assert isinstance(models, BTYDModels) and models.bgf.time_unit_days == 7.0
    out = btyd_features(score, horizon_days=30.0, fitted=models)
    pd.testing.assert_frame_equal(out, apply_btyd(models, score, horizon_days=30.0))
    refit = btyd_features(score, horizon_days=30.0)
    assert not np.allclose(out["btyd_p_alive"], refit["btyd_p_alive"])


def test_btyd_features_reject_bad_frames():
    """Missing columns or recency_days > tenure_days raise a ValueError."""
    rfm = rfm_frame(n=200)
    with pytest.raises(ValueError, match="missing columns"):
        btyd_features(rfm.drop(columns="tenure_days"), horizon_days=30.0)
    bad = rfm.copy()
    bad.loc[bad.index[0], "recency_days"] = bad["tenure_days"].iloc[0] + 1
    with pytest.raises(ValueError, match="recency_days"):
        btyd_features(bad, horizon_days=30.0)
