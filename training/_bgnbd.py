"""The BG/NBD model of repeat purchases (Fader, Hardie & Lee 2005).

Implements the beta-geometric/negative-binomial distribution model of
"Counting your customers the easy way". Everything is vectorised, the
likelihood is evaluated in log space (``gammaln``/``betaln``/``logaddexp``) and
the parameters are optimised on the log scale with L-BFGS-B and an analytic
gradient from several starting points (:mod:`._btyd_common`), so that large
counts or long tenures neither overflow nor stop the optimiser.

Time units
----------
:class:`BetaGeoFitter` works in *one* time unit chosen by the caller (days,
weeks, ...): ``recency``, ``T`` and every horizon ``t`` are in that unit, and
``time_unit_days`` records how many days one unit is (it is only used where a
horizon is given in days, e.g.
:meth:`~churnclv.training.GammaGammaFitter.customer_lifetime_value`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1, roots_jacobi

from churnclv.training._btyd_common import (
    FitterBase,
    as_float_array,
    bad_indices,
    check_finite_nonnegative,
    check_penalizer,
    compress,
    fitted_param,
    validate_weights,
)

__all__ = ["BetaGeoFitter"]


def _validate_bgnbd_inputs(
    frequency: object, recency: object, T: object, *, one_dimensional: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and broadcast (x, t_x, T); see :meth:`BetaGeoFitter.fit` for the rules."""
    x = as_float_array("frequency", frequency)
    tx = as_float_array("recency", recency)
    big_t = as_float_array("T", T)
    for name, arr in (("frequency", x), ("recency", tx), ("T", big_t)):
        if one_dimensional and arr.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
        check_finite_nonnegative(name, arr)
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
            f"violated at indices {bad_indices(too_late)}"
        )
    zero_with_recency = (x == 0) & (tx > tol)
    if zero_with_recency.any():
        raise ValueError(
            "recency must be 0 where frequency is 0 (no repeat purchase means the last purchase "
            f"is the first); violated at indices {bad_indices(zero_with_recency)}"
        )
    return x, np.minimum(tx, big_t), big_t


def _validate_horizon(t: object) -> np.ndarray:
    arr = as_float_array("t", t)
    check_finite_nonnegative("t", arr)
    return arr


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


class BetaGeoFitter(FitterBase):
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

    Examples
    --------
    Eight customers observed for 40 weeks since their first purchase:
    ``frequency`` repeat purchases, the last one ``recency`` weeks after the first.

    >>> from churnclv import BetaGeoFitter
    >>> bgf = BetaGeoFitter(time_unit_days=7.0).fit(
    ...     frequency=[0, 1, 4, 2, 0, 6, 3, 1],
    ...     recency=[0, 30, 10, 36, 0, 38, 5, 2],
    ...     T=[40] * 8,
    ... )
    >>> bgf.converged_, sorted(bgf.params_)
    (True, ['a', 'alpha', 'b', 'r'])

    A model with known parameters (the paper's CDNOW estimates, in weeks): of two
    customers with 4 repeat purchases, the one who last bought in week 38 is far
    likelier alive, and expected to buy more in the next 52 weeks, than the one
    who last bought in week 8.

    >>> cdnow = BetaGeoFitter.from_params(r=0.243, alpha=4.414, a=0.793, b=2.426)
    >>> cdnow.conditional_probability_alive([4, 4], [38, 8], [40, 40]).round(2)
    array([0.85, 0.03])
    >>> cdnow.conditional_expected_number_of_purchases_up_to_time(
    ...     52, [4, 4], [38, 8], [40, 40]
    ... ).round(1)
    array([3.3, 0.1])
    """

    _param_names = ("r", "alpha", "a", "b")
    _label = "BG/NBD"
    #: Per-row log-likelihood and gradient of the model (a subclass's own likelihood).
    _loglik_and_grad = staticmethod(_bgnbd_loglik_and_grad)
    #: Added to ``b`` in the posterior of the dropout probability given alive (``Beta(a, b+x)``).
    _b_shift = 0.0

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
        model._set_params_from({"r": r, "alpha": alpha, "a": a, "b": b})
        return model

    r_ = fitted_param("r")
    alpha_ = fitted_param("alpha")
    a_ = fitted_param("a")
    b_ = fitted_param("b")

    def _params(self) -> tuple[float, float, float, float]:
        self._check_fitted()
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
        penalizer = check_penalizer(self.penalizer)
        unit = float(self.time_unit_days)
        if not (np.isfinite(unit) and unit > 0):
            raise ValueError(f"time_unit_days must be finite and > 0, got {self.time_unit_days!r}")
        x, tx, big_t = _validate_bgnbd_inputs(frequency, recency, T, one_dimensional=True)
        w = validate_weights(weights, x.shape[0])
        if x.shape[0] == 0:
            raise ValueError("cannot fit on zero customers")
        xs, txs, ts, ws = compress((x, tx, big_t), w)
        if not (ws @ xs > 0):
            raise ValueError("frequency is 0 for every customer: BG/NBD is not identified")
        if not (ws @ ts > 0):
            raise ValueError("T is 0 for every customer: BG/NBD is not identified")

        self.n_unique_ = int(xs.shape[0])
        grid = self._start_grid(xs, ts, ws)
        self._maximize(self._loglik_and_grad, (xs, txs, ts), ws, grid, penalizer)
        return self

    @staticmethod
    def _start_grid(xs: np.ndarray, ts: np.ndarray, ws: np.ndarray) -> list[np.ndarray]:
        """Moment-based starting guesses (log-parameters) on a small grid."""
        rate = (ws @ xs) / (ws @ ts)  # repeat purchases per unit time
        share_repeat = (ws @ (xs > 0)) / ws.sum()
        grid = []
        for r0 in (0.25, 1.0, 4.0):
            for a0, b0 in ((0.5, 2.0), (1.0, 1.0), (1.0, 5.0), (2.0, 10.0)):
                # crude: one-timers partly reflect a low rate, partly dropout
                a_adj = a0 * (1.5 - share_repeat)
                grid.append(np.log([r0, r0 / rate, a_adj, b0]))
        return grid

    # -- predictions ----------------------------------------------------------------------

    def _log_odds_dead(self, x: np.ndarray, tx: np.ndarray, big_t: np.ndarray) -> np.ndarray:
        r, alpha, a, b = self._params()
        pos = x > 0
        bx1 = np.where(pos, b + x - 1.0, 1.0)
        lo = np.log(a) - np.log(bx1) + (r + x) * (np.log(alpha + big_t) - np.log(alpha + tx))
        return np.where(pos, lo, -np.inf)

    def _horizon_inputs(
        self, t: object, frequency: object, recency: object, T: object
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The checked horizon, ``x`` and ``T`` broadcast together, and P(alive)."""
        tt = _validate_horizon(t)
        x, tx, big_t = _validate_bgnbd_inputs(frequency, recency, T, one_dimensional=False)
        tt, x, tx, big_t = np.broadcast_arrays(tt, x, tx, big_t)
        return tt, x, big_t, expit(-self._log_odds_dead(x, tx, big_t))

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
        tt, x, big_t, p_alive = self._horizon_inputs(t, frequency, recency, T)
        r, alpha, a, b = self._params()
        b = b + self._b_shift
        delta = 1e-3
        if abs(a - 1.0) < delta:  # removable singularity at a == 1: interpolate in a
            lo = _alive_mean_hyp2f1(tt, x, big_t, (r, alpha, 1.0 - delta, b))
            hi = _alive_mean_hyp2f1(tt, x, big_t, (r, alpha, 1.0 + delta, b))
            alive_mean = lo + (a - 1.0 + delta) / (2.0 * delta) * (hi - lo)
        else:
            alive_mean = _alive_mean_hyp2f1(tt, x, big_t, (r, alpha, a, b))
        upper = (r + x) / (alpha + big_t) * tt
        return p_alive * np.clip(alive_mean, 0.0, upper)

    def probability_no_purchase_up_to_time(
        self, t: object, frequency: object, recency: object, T: object
    ) -> np.ndarray:
        """P(no purchase in ``(T, T + t]`` | x, t_x, T).

        Parameters
        ----------
        t, frequency, recency, T
            As in :meth:`conditional_expected_number_of_purchases_up_to_time`.

        Returns
        -------
        numpy.ndarray
            P(no purchase) of each customer (broadcast shape of the inputs).

        Notes
        -----
        A dead customer never buys; an alive one with rate ``lambda`` makes no
        purchase in ``t`` with probability ``exp(-lambda t)`` (dropout only follows
        a purchase). Given alive, the posterior of ``lambda`` is
        ``Gamma(r+x, alpha+T)``, so
        ``P = (1 - P(alive)) + P(alive) ((alpha+T)/(alpha+T+t))^(r+x)``.
        """
        tt, x, big_t, p_alive = self._horizon_inputs(t, frequency, recency, T)
        r, alpha, _, _ = self._params()
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
    t: np.ndarray, x: np.ndarray, big_t: np.ndarray, params: tuple[float, float, float, float]
) -> np.ndarray:
    """E[purchases in t | alive, x, T] from FHL eq. 10, Euler-transformed, with fallbacks.

    ``params`` is ``(r, alpha, a, b)``.
    """
    r, alpha, a, b = params
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
