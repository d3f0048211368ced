"""Our own BG/NBD and Gamma-Gamma ("buy 'til you die") models.

Implements the beta-geometric/negative-binomial distribution model of
Fader, Hardie & Lee (2005), "Counting your customers the easy way", and the
Gamma-Gamma spend model of Fader & Hardie (2013), "The Gamma-Gamma model of
monetary value". Everything is vectorised, the likelihoods are evaluated in
log space (``gammaln``/``betaln``/``logaddexp``) and the parameters are
optimised on the log scale with L-BFGS-B and an analytic gradient from several
starting points, so that large counts or long tenures neither overflow nor
stop the optimiser.

Time units
----------
:class:`BetaGeoFitter` works in *one* time unit chosen by the caller (days,
weeks, ...): ``recency``, ``T`` and every horizon ``t`` are in that unit, and
``time_unit_days`` records how many days one unit is (it is only used where a
horizon is given in days, e.g. :meth:`GammaGammaFitter.customer_lifetime_value`).
The feature helpers (:func:`fit_btyd`, :func:`apply_btyd`, :func:`btyd_features`)
take days and convert to weeks by default.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1, roots_jacobi
from sklearn.base import BaseEstimator

__all__ = [
    "BTYDModels",
    "BetaGeoFitter",
    "GammaGammaFitter",
    "apply_btyd",
    "btyd_arrays",
    "btyd_features",
    "fit_btyd",
]

_LOG_BOUND = 18.0  # log-parameters are kept in [-18, 18] (about 1.5e-8 .. 6.6e7)
_MAX_BAD_SHOWN = 5


# --------------------------------------------------------------------------- validation


def _as_float_array(name: str, values: object) -> np.ndarray:
    """Convert ``values`` to a float64 array, raising a ValueError naming ``name``."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from exc
    return arr


def _bad_indices(mask: np.ndarray) -> str:
    idx = np.flatnonzero(np.ravel(mask))
    shown = ", ".join(str(i) for i in idx[:_MAX_BAD_SHOWN])
    more = f", ... ({idx.size} in all)" if idx.size > _MAX_BAD_SHOWN else ""
    return f"[{shown}{more}]"


def _check_finite_nonnegative(name: str, arr: np.ndarray) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} must be finite; NaN or inf at indices {_bad_indices(bad)}")
    neg = arr < 0
    if neg.any():
        raise ValueError(f"{name} must be non-negative; negative at indices {_bad_indices(neg)}")


def _validate_bgnbd_inputs(
    frequency: object, recency: object, T: object, *, one_dimensional: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and broadcast (x, t_x, T); see :meth:`BetaGeoFitter.fit` for the rules."""
    x = _as_float_array("frequency", frequency)
    tx = _as_float_array("recency", recency)
    big_t = _as_float_array("T", T)
    for name, arr in (("frequency", x), ("recency", tx), ("T", big_t)):
        if one_dimensional and arr.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
        _check_finite_nonnegative(name, arr)
    try:
        x, tx, big_t = np.broadcast_arrays(x, tx, big_t)
    except ValueError as exc:
        raise ValueError(
            f"frequency, recency and T must have the same length: "
            f"{np.shape(np.asarray(frequency))}, {np.shape(np.asarray(recency))}, "
            f"{np.shape(np.asarray(T))}"
        ) from exc
    tol = 1e-9 * np.maximum(1.0, big_t)
    too_late = tx > big_t + tol
    if too_late.any():
        raise ValueError(
            f"recency must be <= T (time of last purchase cannot be after the cutoff); "
            f"violated at indices {_bad_indices(too_late)}"
        )
    zero_with_recency = (x == 0) & (tx > tol)
    if zero_with_recency.any():
        raise ValueError(
            "recency must be 0 where frequency is 0 (no repeat purchase means the last purchase "
            f"is the first); violated at indices {_bad_indices(zero_with_recency)}"
        )
    return x, np.minimum(tx, big_t), big_t


def _validate_horizon(t: object) -> np.ndarray:
    arr = _as_float_array("t", t)
    _check_finite_nonnegative("t", arr)
    return arr


def _validate_weights(weights: object, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = _as_float_array("weights", weights)
    if w.shape != (n,):
        raise ValueError(f"weights must have shape ({n},), got {w.shape}")
    _check_finite_nonnegative("weights", w)
    if not (w > 0).any():
        raise ValueError("weights must contain at least one positive value")
    return w


def _compress(columns: tuple[np.ndarray, ...], w: np.ndarray) -> tuple[np.ndarray, ...]:
    """Collapse identical rows of ``columns``, summing their weights."""
    keep = w > 0
    stacked = np.column_stack([c[keep] for c in columns])
    uniq, inverse = np.unique(stacked, axis=0, return_inverse=True)
    wsum = np.bincount(inverse.ravel(), weights=w[keep], minlength=uniq.shape[0])
    return (*(uniq[:, j] for j in range(uniq.shape[1])), wsum)


def _positive_params(
    names: tuple[str, ...], values: Mapping[str, float], model: str
) -> dict[str, float]:
    out = {k: float(values[k]) for k in names}
    bad = [k for k, v in out.items() if not (np.isfinite(v) and v > 0)]
    if bad:
        raise ValueError(f"{model} parameters must be finite and positive: {bad}")
    return out


def _fitted_param(name: str) -> property:
    """A read-only ``<name>_`` attribute of the fitted ``params_``."""

    def get(self: Any) -> float:
        _check_fitted(self)
        return float(self.params_[name])

    return property(get, doc=f"The fitted ``{name}``.")


def _check_fitted(est: object) -> None:
    if getattr(est, "params_", None) is None:
        raise RuntimeError(f"{type(est).__name__} is not fitted; call fit() or from_params() first")


def _minimize_multistart(
    objective,
    starts: list[np.ndarray],
    n_params: int,
) -> tuple[np.ndarray, float, bool, int]:
    """Run L-BFGS-B from each start and keep the best finite optimum."""
    best_x, best_f, best_ok, best_nit = None, np.inf, False, 0
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * n_params
    for x0 in starts:
        with np.errstate(all="ignore"):
            res = minimize(
                objective,
                np.clip(x0, -_LOG_BOUND + 1, _LOG_BOUND - 1),
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-7},
            )
        if np.isfinite(res.fun) and np.all(np.isfinite(res.x)) and res.fun < best_f:
            best_x, best_f, best_ok, best_nit = res.x, float(res.fun), bool(res.success), res.nit
    if best_x is None:
        raise RuntimeError("optimisation failed from every starting point (non-finite objective)")
    return best_x, best_f, best_ok, int(best_nit)


# --------------------------------------------------------------------------- BG/NBD


def _bgnbd_loglik_and_grad(
    params: np.ndarray, x: np.ndarray, tx: np.ndarray, big_t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row BG/NBD log-likelihood and its gradient w.r.t. (r, alpha, a, b)."""
    r, alpha, a, b = params
    pos = x > 0
    bx1 = np.where(pos, b + x - 1.0, 1.0)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + big_t)
    a4 = np.where(pos, np.log(a) - np.log(bx1) - (r + x) * np.log(alpha + tx), -np.inf)
    mix = np.logaddexp(a3, a4)
    ll = a1 + a2 + mix
    w3 = np.exp(a3 - mix)
    w4 = 1.0 - w3
    d_r = (
        digamma(r + x)
        - digamma(r)
        + np.log(alpha)
        - w3 * np.log(alpha + big_t)
        - w4 * np.log(alpha + tx)
    )
    d_alpha = r / alpha - (r + x) * (w3 / (alpha + big_t) + w4 / (alpha + tx))
    psi_ab = digamma(a + b)
    psi_abx = digamma(a + b + x)
    d_a = psi_ab - psi_abx + w4 / a
    d_b = digamma(b + x) - psi_abx - digamma(b) + psi_ab - np.where(pos, w4 / bx1, 0.0)
    return ll, np.stack([d_r, d_alpha, d_a, d_b])


class BetaGeoFitter(BaseEstimator):
    """BG/NBD model of repeat-purchase counts (Fader, Hardie & Lee 2005).

    Each customer buys at Poisson rate ``lambda ~ Gamma(r, alpha)`` while alive
    and, after each *repeat* purchase, drops out for good with probability
    ``p ~ Beta(a, b)``. Dropout is unobserved.

    Parameters
    ----------
    penalizer : float, default 0.0
        Coefficient of an L2 penalty ``penalizer * (r**2 + alpha**2 + a**2 + b**2)``
        added to the mean negative log-likelihood (as in ``lifetimes``). Shrinks
        parameters towards 0 and stabilises degenerate data sets.
    time_unit_days : float, default 1.0
        Number of days in the time unit of ``recency``, ``T`` and ``t`` (7.0 for
        weeks). Only used to convert horizons given in days.

    Attributes
    ----------
    params_ : dict of str to float
        Fitted ``{"r", "alpha", "a", "b"}``; ``r_``, ``alpha_``, ``a_`` and ``b_``
        read from it.
    log_likelihood_ : float
        Total (weighted) log-likelihood at the optimum, without the penalty.
    converged_ : bool
        Whether L-BFGS-B reported success for the best start.
    n_iter_ : int
        Iterations of the best start.
    n_unique_ : int
        Number of distinct ``(x, t_x, T)`` rows the likelihood was evaluated on.

    Notes
    -----
    ``alpha`` is in the caller's time unit: a model fitted in days has an
    ``alpha`` 7 times that of the same model fitted in weeks.
    """

    _param_names = ("r", "alpha", "a", "b")

    def __init__(self, penalizer: float = 0.0, time_unit_days: float = 1.0) -> None:
        self.penalizer = penalizer
        self.time_unit_days = time_unit_days

    # -- parameters -----------------------------------------------------------------------

    @classmethod
    def from_params(
        cls, r: float, alpha: float, a: float, b: float, *, time_unit_days: float = 1.0
    ) -> BetaGeoFitter:
        """Build a fitted model from known parameters.

        Parameters
        ----------
        r, alpha, a, b : float
            Positive BG/NBD parameters (``alpha`` in the time unit of the model).
        time_unit_days : float, default 1.0
            Days per time unit.

        Returns
        -------
        BetaGeoFitter
        """
        model = cls(time_unit_days=time_unit_days)
        model.params_ = _positive_params(
            cls._param_names, {"r": r, "alpha": alpha, "a": a, "b": b}, "BG/NBD"
        )
        return model

    r_ = _fitted_param("r")
    alpha_ = _fitted_param("alpha")
    a_ = _fitted_param("a")
    b_ = _fitted_param("b")

    def _params(self) -> tuple[float, float, float, float]:
        _check_fitted(self)
        p = self.params_
        return p["r"], p["alpha"], p["a"], p["b"]

    # -- fitting --------------------------------------------------------------------------

    def fit(
        self,
        frequency: object,
        recency: object,
        T: object,
        weights: object = None,
    ) -> BetaGeoFitter:
        """Fit by maximum (penalised) likelihood.

        Parameters
        ----------
        frequency : array-like of shape (n,)
            Repeat purchases ``x`` (distinct purchase periods minus 1).
        recency : array-like of shape (n,)
            ``t_x``: time from the first to the last purchase (0 when ``x == 0``).
        T : array-like of shape (n,)
            Time from the first purchase to the end of the observation window.
        weights : array-like of shape (n,), optional
            Non-negative case weights (e.g. counts of identical customers).

        Returns
        -------
        BetaGeoFitter
            ``self``.

        Raises
        ------
        ValueError
            If an input is not finite, negative, of mismatched length, if
            ``recency > T``, if ``recency != 0`` where ``frequency == 0``, if the
            hyper-parameters are invalid, or if there is no repeat purchase or no
            positive ``T`` at all (the model is then not identified).
        """
        penalizer = float(self.penalizer)
        if not (np.isfinite(penalizer) and penalizer >= 0):
            raise ValueError(f"penalizer must be finite and >= 0, got {self.penalizer!r}")
        unit = float(self.time_unit_days)
        if not (np.isfinite(unit) and unit > 0):
            raise ValueError(f"time_unit_days must be finite and > 0, got {self.time_unit_days!r}")
        x, tx, big_t = _validate_bgnbd_inputs(frequency, recency, T, one_dimensional=True)
        w = _validate_weights(weights, x.shape[0])
        if x.shape[0] == 0:
            raise ValueError("cannot fit on zero customers")
        xs, txs, ts, ws = _compress((x, tx, big_t), w)
        wtot = ws.sum()
        if not (ws @ xs > 0):
            raise ValueError("frequency is 0 for every customer: BG/NBD is not identified")
        if not (ws @ ts > 0):
            raise ValueError("T is 0 for every customer: BG/NBD is not identified")

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            params = np.exp(theta)
            ll, grad = _bgnbd_loglik_and_grad(params, xs, txs, ts)
            f = -(ws @ ll) / wtot + penalizer * params @ params
            g = -(grad @ ws) / wtot * params + 2.0 * penalizer * params**2
            if not np.isfinite(f):
                return np.inf, np.zeros(4)
            return float(f), np.nan_to_num(g)

        starts = self._starting_points(xs, ts, ws, objective)
        theta, _, ok, nit = _minimize_multistart(objective, starts, 4)
        params = np.exp(theta)
        ll, _ = _bgnbd_loglik_and_grad(params, xs, txs, ts)
        self.params_ = dict(zip(self._param_names, map(float, params), strict=True))
        self.log_likelihood_ = float(ws @ ll)
        self.converged_ = ok
        self.n_iter_ = nit
        self.n_unique_ = int(xs.shape[0])
        if not ok:
            warnings.warn("BG/NBD optimisation did not report convergence", RuntimeWarning, 2)
        return self

    @staticmethod
    def _starting_points(xs, ts, ws, objective) -> list[np.ndarray]:
        """Moment-based guesses on a small grid; the 3 best by objective are returned."""
        rate = (ws @ xs) / (ws @ ts)  # repeat purchases per unit time
        share_repeat = (ws @ (xs > 0)) / ws.sum()
        grid = []
        for r0 in (0.25, 1.0, 4.0):
            for a0, b0 in ((0.5, 2.0), (1.0, 1.0), (1.0, 5.0), (2.0, 10.0)):
                # crude: one-timers partly reflect a low rate, partly dropout
                a_adj = a0 * (1.5 - share_repeat)
                grid.append(np.log([r0, r0 / rate, a_adj, b0]))
        scored = sorted(grid, key=lambda th: objective(th)[0])
        return scored[:3]

    # -- predictions ----------------------------------------------------------------------

    def _log_odds_dead(self, x: np.ndarray, tx: np.ndarray, big_t: np.ndarray) -> np.ndarray:
        r, alpha, a, b = self._params()
        pos = x > 0
        bx1 = np.where(pos, b + x - 1.0, 1.0)
        lo = np.log(a) - np.log(bx1) + (r + x) * (np.log(alpha + big_t) - np.log(alpha + tx))
        return np.where(pos, lo, -np.inf)

    def conditional_probability_alive(
        self, frequency: object, recency: object, T: object
    ) -> np.ndarray:
        """P(customer is still alive at ``T`` | x, t_x, T).

        Parameters
        ----------
        frequency, recency, T : array-like
            As in :meth:`fit` (broadcast against each other).

        Returns
        -------
        numpy.ndarray
            Probabilities in ``[0, 1]``.

        Notes
        -----
        Under BG/NBD dropout can only happen right after a repeat purchase, so a
        customer with ``frequency == 0`` is alive with probability exactly 1. This
        is the model's definition, not a claim about one-time buyers; use
        :meth:`probability_no_purchase_up_to_time` for a churn-like score.
        """
        x, tx, big_t = _validate_bgnbd_inputs(frequency, recency, T, one_dimensional=False)
        return expit(-self._log_odds_dead(x, tx, big_t))

    def conditional_expected_number_of_purchases_up_to_time(
        self, t: object, frequency: object, recency: object, T: object
    ) -> np.ndarray:
        """E[Y(t) | x, t_x, T]: expected purchases in ``(T, T + t]`` (FHL 2005 eq. 10).

        Parameters
        ----------
        t : float or array-like
            Horizon, in the model's time unit.
        frequency, recency, T : array-like
            As in :meth:`fit`.

        Returns
        -------
        numpy.ndarray
            Finite, non-negative expectations (broadcast shape of the inputs).

        Notes
        -----
        ``2F1(r+x, b+x; a+b+x-1; z)`` with ``z = t/(alpha+T+t)`` grows without
        bound for large ``x`` while its prefactor ``((alpha+T)/(alpha+T+t))^(r+x)``
        vanishes. We use Euler's transformation
        ``2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z)``, which turns the
        product into ``(1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)`` whose parameters
        do not grow with ``x``. Any value still not finite falls back to the
        original form, then to Gauss-Jacobi quadrature of
        ``E_p[(1 - ((alpha+T)/(alpha+T+p t))^(r+x)) / p]`` over the posterior
        ``p ~ Beta(a, b+x)`` (accurate while ``t`` is not much larger than
        ``alpha + T``). Within 1e-3 of the removable singularity ``a == 1`` the
        result is interpolated linearly between ``a = 1 -/+ 1e-3``. Results are
        clipped to ``[0, P(alive) E[lambda] t]``, a hard upper bound (no dropout).
        """
        tt = _validate_horizon(t)
        x, tx, big_t = _validate_bgnbd_inputs(frequency, recency, T, one_dimensional=False)
        tt, x, tx, big_t = np.broadcast_arrays(tt, x, tx, big_t)
        r, alpha, a, b = self._params()
        p_alive = expit(-self._log_odds_dead(x, tx, big_t))
        delta = 1e-3
        if abs(a - 1.0) < delta:  # removable singularity at a == 1: interpolate in a
            lo = _alive_mean_hyp2f1(tt, x, big_t, r, alpha, 1.0 - delta, b)
            hi = _alive_mean_hyp2f1(tt, x, big_t, r, alpha, 1.0 + delta, b)
            alive_mean = lo + (a - 1.0 + delta) / (2.0 * delta) * (hi - lo)
        else:
            alive_mean = _alive_mean_hyp2f1(tt, x, big_t, r, alpha, a, b)
        upper = (r + x) / (alpha + big_t) * tt
        return p_alive * np.clip(alive_mean, 0.0, upper)

    def probability_no_purchase_up_to_time(
        self, t: object, frequency: object, recency: object, T: object
    ) -> np.ndarray:
        """P(no purchase in ``(T, T + t]`` | x, t_x, T).

        Parameters
        ----------
        t : float or array-like
            Horizon, in the model's time unit.
        frequency, recency, T : array-like
            As in :meth:`fit`.

        Returns
        -------
        numpy.ndarray
            Probabilities in ``[0, 1]``.

        Notes
        -----
        A dead customer never buys; an alive one with rate ``lambda`` makes no
        purchase in ``t`` with probability ``exp(-lambda t)`` (dropout only follows
        a purchase). Given alive, the posterior of ``lambda`` is
        ``Gamma(r+x, alpha+T)``, so
        ``P = (1 - P(alive)) + P(alive) ((alpha+T)/(alpha+T+t))^(r+x)``.
        """
        tt = _validate_horizon(t)
        x, tx, big_t = _validate_bgnbd_inputs(frequency, recency, T, one_dimensional=False)
        tt, x, tx, big_t = np.broadcast_arrays(tt, x, tx, big_t)
        r, alpha, _, _ = self._params()
        p_alive = expit(-self._log_odds_dead(x, tx, big_t))
        survive = np.exp((r + x) * (np.log(alpha + big_t) - np.log(alpha + big_t + tt)))
        return np.clip((1.0 - p_alive) + p_alive * survive, 0.0, 1.0)

    def expected_number_of_purchases_up_to_time(self, t: object) -> np.ndarray:
        """Unconditional E[X(t)]: expected repeat purchases in ``(0, t]`` of a new customer.

        Parameters
        ----------
        t : float or array-like
            Horizon, in the model's time unit.

        Returns
        -------
        numpy.ndarray
            ``(a+b-1)/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))]``,
            i.e. the conditional expectation at ``x = t_x = T = 0``.
        """
        tt = _validate_horizon(t)
        zero = np.zeros_like(tt)
        return self.conditional_expected_number_of_purchases_up_to_time(tt, zero, zero, zero)


def _alive_mean_hyp2f1(
    t: np.ndarray,
    x: np.ndarray,
    big_t: np.ndarray,
    r: float,
    alpha: float,
    a: float,
    b: float,
) -> np.ndarray:
    """E[purchases in t | alive, x, T] from FHL eq. 10, Euler-transformed, with fallbacks."""
    with np.errstate(all="ignore"):
        c = a + b + x - 1.0
        z = t / (alpha + big_t + t)
        log1mz = np.log(alpha + big_t) - np.log(alpha + big_t + t)
        term = np.exp((a - 1.0) * log1mz) * hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
        out = c / (a - 1.0) * (1.0 - term)
        bad = ~np.isfinite(out)
        if bad.any():  # original (untransformed) form
            orig = np.exp((r + x) * log1mz) * hyp2f1(r + x, b + x, c, z)
            out = np.where(bad, c / (a - 1.0) * (1.0 - orig), out)
            bad = ~np.isfinite(out)
    if bad.any():
        out = out.copy()
        out[bad] = _alive_mean_quadrature(t[bad], x[bad], big_t[bad], r, alpha, a, b)
    return out


def _alive_mean_quadrature(
    t: np.ndarray,
    x: np.ndarray,
    big_t: np.ndarray,
    r: float,
    alpha: float,
    a: float,
    b: float,
    n_nodes: int = 64,
) -> np.ndarray:
    """E[purchases in t | alive] by Gauss-Jacobi quadrature over ``p ~ Beta(a, b+x)``.

    Given alive, ``lambda ~ Gamma(r+x, alpha+T)`` and ``p ~ Beta(a, b+x)`` are
    independent, and ``E[X(t) | lambda, p] = (1 - exp(-lambda p t)) / p``.
    """
    out = np.empty(t.shape, dtype=np.float64)
    for xv in np.unique(x):
        sel = x == xv
        u, wq = roots_jacobi(n_nodes, b + xv - 1.0, a - 1.0)  # weight (1-u)^(b+x-1)(1+u)^(a-1)
        p = (1.0 + u) / 2.0
        wq = wq / wq.sum()
        ratio = np.log(alpha + big_t[sel])[:, None] - np.log(
            alpha + big_t[sel][:, None] + p[None, :] * t[sel][:, None]
        )
        integrand = -np.expm1((r + xv) * ratio) / p[None, :]
        out[sel] = integrand @ wq
    return out


# --------------------------------------------------------------------------- Gamma-Gamma


def _gg_loglik_and_grad(
    params: np.ndarray, x: np.ndarray, m: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row Gamma-Gamma log-density of the mean spend and its gradient w.r.t. (p, q, v)."""
    p, q, v = params
    px = p * x
    log_xm_v = np.log(x * m + v)
    ll = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1.0) * np.log(m)
        + px * np.log(x)
        - (px + q) * log_xm_v
    )
    psi_pq = digamma(px + q)
    d_p = x * (psi_pq - digamma(px) + np.log(m) + np.log(x) - log_xm_v)
    d_q = psi_pq - digamma(q) + np.log(v) - log_xm_v
    d_v = q / v - (px + q) / (x * m + v)
    return ll, np.stack([d_p, d_q, d_v])


class GammaGammaFitter(BaseEstimator):
    """Gamma-Gamma model of the mean spend per transaction (Fader & Hardie 2013).

    Each transaction value is ``Gamma(p, nu)``; the customer-level ``nu`` is
    ``Gamma(q, v)``, so a customer's mean spend is ``p / nu`` with population mean
    ``p v / (q - 1)``. Spend is assumed independent of the purchase process.

    Parameters
    ----------
    penalizer : float, default 0.0
        L2 penalty ``penalizer * (p**2 + q**2 + v**2)`` added to the mean
        negative log-likelihood.

    Attributes
    ----------
    params_ : dict of str to float
        Fitted ``{"p", "q", "v"}``; ``p_``, ``q_`` and ``v_`` read from it.
    log_likelihood_ : float
        Total (weighted) log-likelihood of the rows used.
    converged_ : bool
        Whether L-BFGS-B reported success for the best start.
    n_iter_ : int
        Iterations of the best start.
    n_used_, n_ignored_ : int
        Rows used, and rows ignored because ``frequency == 0`` or
        ``monetary_value <= 0``.
    """

    _param_names = ("p", "q", "v")

    def __init__(self, penalizer: float = 0.0) -> None:
        self.penalizer = penalizer

    @classmethod
    def from_params(cls, p: float, q: float, v: float) -> GammaGammaFitter:
        """Build a fitted model from known positive parameters ``p``, ``q``, ``v``."""
        model = cls()
        model.params_ = _positive_params(cls._param_names, {"p": p, "q": q, "v": v}, "Gamma-Gamma")
        return model

    p_ = _fitted_param("p")
    q_ = _fitted_param("q")
    v_ = _fitted_param("v")

    def fit(
        self, frequency: object, monetary_value: object, weights: object = None
    ) -> GammaGammaFitter:
        """Fit by maximum (penalised) likelihood on customers with repeat purchases.

        Parameters
        ----------
        frequency : array-like of shape (n,)
            Number of transactions averaged in ``monetary_value`` (the ``lifetimes``
            convention uses the repeat-purchase count).
        monetary_value : array-like of shape (n,)
            Mean spend per transaction.
        weights : array-like of shape (n,), optional
            Non-negative case weights.

        Returns
        -------
        GammaGammaFitter
            ``self``.

        Raises
        ------
        ValueError
            If an input contains NaN/inf, ``frequency`` is negative, the lengths
            differ, or fewer than 3 usable rows remain.

        Notes
        -----
        Rows with ``frequency == 0`` or ``monetary_value <= 0`` (e.g. net refunds)
        are **ignored**, not rejected; their count is stored in ``n_ignored_``.
        """
        penalizer = float(self.penalizer)
        if not (np.isfinite(penalizer) and penalizer >= 0):
            raise ValueError(f"penalizer must be finite and >= 0, got {self.penalizer!r}")
        x = _as_float_array("frequency", frequency)
        m = _as_float_array("monetary_value", monetary_value)
        for name, arr in (("frequency", x), ("monetary_value", m)):
            if arr.ndim != 1:
                raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
        if x.shape != m.shape:
            raise ValueError(
                f"frequency and monetary_value must have the same length: {x.shape}, {m.shape}"
            )
        _check_finite_nonnegative("frequency", x)
        bad = ~np.isfinite(m)
        if bad.any():
            raise ValueError(
                f"monetary_value must be finite; NaN or inf at indices {_bad_indices(bad)}"
            )
        w = _validate_weights(weights, x.shape[0])
        use = (x > 0) & (m > 0) & (w > 0)
        if use.sum() < 3:
            raise ValueError(
                "Gamma-Gamma needs at least 3 customers with frequency > 0 and "
                f"monetary_value > 0; got {int(use.sum())}"
            )
        xs, ms, ws = _compress((x[use], m[use]), w[use])
        wtot = ws.sum()

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            params = np.exp(theta)
            ll, grad = _gg_loglik_and_grad(params, xs, ms)
            f = -(ws @ ll) / wtot + penalizer * params @ params
            g = -(grad @ ws) / wtot * params + 2.0 * penalizer * params**2
            if not np.isfinite(f):
                return np.inf, np.zeros(3)
            return float(f), np.nan_to_num(g)

        mean_m = (ws @ ms) / wtot
        grid = []
        for p0 in (0.5, 2.0, 6.0):
            for q0 in (1.5, 4.0, 12.0):
                # match the population mean spend p v / (q - 1) = mean_m
                grid.append(np.log([p0, q0, mean_m * (q0 - 1.0) / p0]))
        starts = sorted(grid, key=lambda th: objective(th)[0])[:3]
        theta, _, ok, nit = _minimize_multistart(objective, starts, 3)
        params = np.exp(theta)
        ll, _ = _gg_loglik_and_grad(params, xs, ms)
        self.params_ = dict(zip(self._param_names, map(float, params), strict=True))
        self.log_likelihood_ = float(ws @ ll)
        self.converged_ = ok
        self.n_iter_ = nit
        self.n_used_ = int(use.sum())
        self.n_ignored_ = int(x.shape[0] - use.sum())
        if not ok:
            warnings.warn("Gamma-Gamma optimisation did not report convergence", RuntimeWarning, 2)
        return self

    def population_mean_spend(self) -> float:
        """Population mean spend per transaction ``p v / (q - 1)``.

        Raises
        ------
        ValueError
            If ``q <= 1`` (the mean does not exist).
        """
        _check_fitted(self)
        p, q, v = (self.params_[k] for k in self._param_names)
        if q <= 1.0:
            raise ValueError(f"Gamma-Gamma mean spend is undefined for q <= 1 (q = {q:.4g})")
        return p * v / (q - 1.0)

    def conditional_expected_average_profit(
        self, frequency: object, monetary_value: object
    ) -> np.ndarray:
        """E[mean spend per transaction | x, m] = ``p (v + x m) / (p x + q - 1)``.

        Parameters
        ----------
        frequency : array-like
            Number of transactions averaged in ``monetary_value``.
        monetary_value : array-like
            Observed mean spend. Ignored where ``frequency == 0``.

        Returns
        -------
        numpy.ndarray
            Expected mean spend; for ``frequency == 0`` this is the population
            mean ``p v / (q - 1)``.

        Raises
        ------
        ValueError
            If ``q <= 1``, or inputs are NaN/inf, or ``frequency`` is negative.
        """
        mean_pop = self.population_mean_spend()
        p, q, v = (self.params_[k] for k in self._param_names)
        x = _as_float_array("frequency", frequency)
        m = _as_float_array("monetary_value", monetary_value)
        _check_finite_nonnegative("frequency", x)
        bad = ~np.isfinite(m) & (x > 0)
        if np.broadcast_to(bad, np.broadcast_shapes(x.shape, m.shape)).any():
            raise ValueError(f"monetary_value must be finite; NaN or inf at {_bad_indices(bad)}")
        x, m = np.broadcast_arrays(x, m)
        m_used = np.where(x > 0, m, 0.0)
        out = p * (v + x * m_used) / (p * x + q - 1.0)
        return np.where(x > 0, out, mean_pop)

    def customer_lifetime_value(
        self,
        bgf: BetaGeoFitter,
        frequency: object,
        recency: object,
        T: object,
        monetary_value: object,
        time_days: float,
        discount_rate_per_day: float = 0.0,
        step_days: float = 30.0,
    ) -> np.ndarray:
        """Expected (discounted) spend in the next ``time_days`` days.

        Parameters
        ----------
        bgf : BetaGeoFitter
            Fitted purchase model; ``frequency``, ``recency`` and ``T`` are in its
            time unit (``bgf.time_unit_days`` days).
        frequency, recency, T : array-like
            BG/NBD inputs; ``frequency`` is also the Gamma-Gamma transaction count.
        monetary_value : array-like
            Observed mean spend per transaction.
        time_days : float
            Horizon in **days**.
        discount_rate_per_day : float, default 0.0
            Spend at day ``d`` is worth ``(1 + rate) ** -d`` today.
        step_days : float, default 30.0
            With discounting, expected purchases are taken in steps of this many
            days, each discounted at its end.

        Returns
        -------
        numpy.ndarray
            ``sum_k (E[Y(t_k)] - E[Y(t_{k-1})]) * E[spend] * (1+rate)^-t_k``; with
            no discount this is exactly ``E[Y(time)] * E[spend]``.
        """
        for name, val in (
            ("time_days", time_days),
            ("discount_rate_per_day", discount_rate_per_day),
        ):
            if not (np.isfinite(val) and val >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {val!r}")
        if not (np.isfinite(step_days) and step_days > 0):
            raise ValueError(f"step_days must be finite and > 0, got {step_days!r}")
        spend = self.conditional_expected_average_profit(frequency, monetary_value)
        unit = float(bgf.time_unit_days)
        if discount_rate_per_day == 0.0:
            edges = np.array([0.0, float(time_days)])
        else:
            n_steps = max(1, int(np.ceil(time_days / step_days - 1e-12)))
            edges = np.minimum(np.arange(n_steps + 1) * step_days, time_days)
        total: np.ndarray | float = 0.0
        previous: np.ndarray | float = 0.0
        for day in edges[1:]:
            cum = bgf.conditional_expected_number_of_purchases_up_to_time(
                day / unit, frequency, recency, T
            )
            total = total + (cum - previous) * (1.0 + discount_rate_per_day) ** (-day)
            previous = cum
        return np.asarray(total * spend, dtype=np.float64)


# --------------------------------------------------------------------------- features

_RFM_COLUMNS = ("frequency", "recency_days", "tenure_days", "monetary_mean")
FEATURE_COLUMNS = (
    "btyd_p_alive",
    "btyd_expected_purchases",
    "btyd_p_no_purchase",
    "btyd_expected_spend",
    "btyd_clv",
)


@dataclass(frozen=True)
class BTYDModels:
    """A fitted BG/NBD + Gamma-Gamma pair, as returned by :func:`fit_btyd`.

    Attributes
    ----------
    bgf : BetaGeoFitter
        Purchase model, in units of ``bgf.time_unit_days`` days.
    ggf : GammaGammaFitter
        Spend model.
    """

    bgf: BetaGeoFitter
    ggf: GammaGammaFitter


def _rfm_column(rfm: Mapping[str, Any] | pd.DataFrame, name: str) -> np.ndarray:
    """One RFM column as float64 (a Series' missing values as NaN), named in errors."""
    values = rfm[name]
    if hasattr(values, "to_numpy"):
        values = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return _as_float_array(name, values)


def _rfm_arrays(
    rfm: Mapping[str, Any] | pd.DataFrame, time_unit_days: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``x``, ``t_x``, ``T`` (in time units) and the mean spend of an RFM frame or a
    mapping of column arrays (the service scores small batches without frames)."""
    missing = [c for c in _RFM_COLUMNS if c not in rfm]
    if missing:
        raise ValueError(f"rfm is missing columns {missing}; needs {list(_RFM_COLUMNS)}")
    x, rec, ten, mon = (_rfm_column(rfm, c) for c in _RFM_COLUMNS)
    _check_finite_nonnegative("recency_days", rec)
    _check_finite_nonnegative("tenure_days", ten)
    over = rec > ten
    if over.any():
        raise ValueError(f"recency_days must be <= tenure_days; violated at {_bad_indices(over)}")
    tx_days = np.where(x == 0, 0.0, ten - rec)  # one-time buyers: t_x = 0 by definition
    return x, tx_days / time_unit_days, ten / time_unit_days, mon


def fit_btyd(
    rfm: pd.DataFrame,
    *,
    time_unit_days: float = 7.0,
    penalizer: float = 0.0,
    gg_penalizer: float = 0.0,
) -> BTYDModels:
    """Fit BG/NBD and Gamma-Gamma on an RFM frame.

    Parameters
    ----------
    rfm : pandas.DataFrame
        Columns ``frequency`` (repeat purchase days), ``recency_days`` (days
        since the last purchase, *not* ``t_x``), ``tenure_days`` (days since the
        first purchase, ``T``) and ``monetary_mean`` (mean spend per purchase day).
    time_unit_days : float, default 7.0
        Time unit of the BG/NBD model (weeks by default; ``t_x`` and ``T`` are
        divided by it).
    penalizer : float, default 0.0
        L2 penalizer of the BG/NBD parameters.
    gg_penalizer : float, default 0.0
        L2 penalizer of the Gamma-Gamma parameters. Kept separate because the
        scale ``v`` is in currency units: a penalty sized for BG/NBD's unit-free
        parameters swamps the likelihood and drives ``q`` below 1.

    Returns
    -------
    BTYDModels

    Notes
    -----
    ``t_x = tenure_days - recency_days`` (forced to 0 for ``frequency == 0``).
    Gamma-Gamma is fitted on rows with ``frequency > 0`` and ``monetary_mean >
    0`` with ``frequency`` as the transaction count (the ``lifetimes``
    convention, although ``monetary_mean`` here also averages the first day).
    """
    x, tx, big_t, mon = _rfm_arrays(rfm, time_unit_days)
    bgf = BetaGeoFitter(penalizer=penalizer, time_unit_days=time_unit_days).fit(x, tx, big_t)
    mon_ok = np.where(np.isfinite(mon), mon, 0.0)
    ggf = GammaGammaFitter(penalizer=gg_penalizer).fit(x, mon_ok)
    return BTYDModels(bgf=bgf, ggf=ggf)


def apply_btyd(models: BTYDModels, rfm: pd.DataFrame, *, horizon_days: float) -> pd.DataFrame:
    """Score an RFM frame with already-fitted models (e.g. fitted on another window).

    Parameters
    ----------
    models : BTYDModels
        From :func:`fit_btyd`.
    rfm : pandas.DataFrame
        Same columns as for :func:`fit_btyd`.
    horizon_days : float
        Prediction horizon in days.

    Returns
    -------
    pandas.DataFrame
        Same index as ``rfm``, with ``btyd_p_alive``, ``btyd_expected_purchases``
        and ``btyd_p_no_purchase`` (over ``horizon_days``), ``btyd_expected_spend``
        (Gamma-Gamma mean spend per purchase; the population mean where
        ``frequency == 0`` or ``monetary_mean <= 0`` or missing) and ``btyd_clv``
        (undiscounted expected purchases times expected spend).
    """
    p_alive, spend, ((e_n, p_none),) = btyd_arrays(models, rfm, (horizon_days,))
    return pd.DataFrame(
        {
            "btyd_p_alive": p_alive,
            "btyd_expected_purchases": e_n,
            "btyd_p_no_purchase": p_none,
            "btyd_expected_spend": spend,
            "btyd_clv": e_n * spend,
        },
        index=rfm.index,
    )


def btyd_arrays(
    models: BTYDModels, rfm: Mapping[str, Any] | pd.DataFrame, horizons_days: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """:func:`apply_btyd`'s arrays for several horizons, sharing what does not depend on one.

    Returns P(alive), the Gamma-Gamma expected spend per purchase, and per
    horizon the expected purchases and P(no purchase) (no frames built).
    """
    for h in horizons_days:
        if not (np.isfinite(h) and h >= 0):
            raise ValueError(f"horizon_days must be finite and >= 0, got {h!r}")
    bgf, ggf = models.bgf, models.ggf
    unit = float(bgf.time_unit_days)
    x, tx, big_t, mon = _rfm_arrays(rfm, unit)
    p_alive = bgf.conditional_probability_alive(x, tx, big_t)
    usable = (x > 0) & np.isfinite(mon) & (mon > 0)
    spend = ggf.conditional_expected_average_profit(
        np.where(usable, x, 0.0), np.where(usable, mon, 0.0)
    )
    per_horizon = [
        (
            bgf.conditional_expected_number_of_purchases_up_to_time(h / unit, x, tx, big_t),
            bgf.probability_no_purchase_up_to_time(h / unit, x, tx, big_t),
        )
        for h in horizons_days
    ]
    return p_alive, spend, per_horizon


def btyd_features(
    rfm: pd.DataFrame,
    *,
    horizon_days: float,
    time_unit_days: float = 7.0,
    fitted: BTYDModels | None = None,
    penalizer: float = 0.0,
) -> pd.DataFrame:
    """BTYD features for an RFM frame: fit on it (or use ``fitted``) and score it.

    Parameters
    ----------
    rfm : pandas.DataFrame
        See :func:`fit_btyd`.
    horizon_days : float
        Prediction horizon in days.
    time_unit_days : float, default 7.0
        Time unit of the models when fitting here (ignored with ``fitted``).
    fitted : BTYDModels, optional
        Models fitted on another window (:func:`fit_btyd`); when given nothing is
        fitted, which keeps a training window's models out of the scoring window.
    penalizer : float, default 0.0
        L2 penalizer when fitting here.

    Returns
    -------
    pandas.DataFrame
        See :func:`apply_btyd`.
    """
    models = (
        fitted
        if fitted is not None
        else fit_btyd(rfm, time_unit_days=time_unit_days, penalizer=penalizer)
    )
    return apply_btyd(models, rfm, horizon_days=horizon_days)
