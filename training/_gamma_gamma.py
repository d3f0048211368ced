"""The Gamma-Gamma model of mean spend per transaction (Fader & Hardie 2013).

Implements "The Gamma-Gamma model of monetary value": the likelihood is
evaluated in log space and the parameters are optimised on the log scale with
L-BFGS-B and an analytic gradient from several starting points
(:mod:`._btyd_common`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln

from churnclv.training import _btyd_common as common
from churnclv.training._bgnbd import BetaGeoFitter
from churnclv.training._btyd_common import FitterBase, fitted_param

__all__ = ["GammaGammaFitter"]


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


def _validate_fit_inputs(
    frequency: object, monetary_value: object, weights: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked ``frequency``, ``monetary_value`` and weights of :meth:`GammaGammaFitter.fit`."""
    x = common.as_float_array("frequency", frequency)
    m = common.as_float_array("monetary_value", monetary_value)
    for name, arr in (("frequency", x), ("monetary_value", m)):
        if arr.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if x.shape != m.shape:
        raise ValueError(
            f"frequency and monetary_value must have the same length: {x.shape}, {m.shape}"
        )
    common.check_finite_nonnegative("frequency", x)
    bad = ~np.isfinite(m)
    if bad.any():
        where = common.bad_indices(bad)
        raise ValueError(f"monetary_value must be finite; NaN or inf at indices {where}")
    return x, m, common.validate_weights(weights, x.shape[0])


class GammaGammaFitter(FitterBase):
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

    Examples
    --------
    Eight customers: transactions averaged and their mean spend.

    >>> from churnclv import BetaGeoFitter, GammaGammaFitter
    >>> ggf = GammaGammaFitter().fit(
    ...     frequency=[1, 2, 3, 5, 1, 4, 2, 6],
    ...     monetary_value=[20.0, 35.0, 18.0, 42.0, 60.0, 25.0, 30.0, 33.0],
    ... )
    >>> ggf.n_used_, ggf.converged_
    (8, True)

    A model with known parameters (the paper's CDNOW estimates): the expected
    spend of a customer shrinks the observed mean towards the population mean,
    the less so the more transactions it averages; with no transaction it is
    the population mean.

    >>> known = GammaGammaFitter.from_params(p=6.25, q=3.74, v=15.44)
    >>> round(known.population_mean_spend(), 2)
    35.22
    >>> known.conditional_expected_average_profit([1, 5, 0], [20.0, 80.0, 0.0]).round(2)
    array([24.64, 76.39, 35.22])

    With a BG/NBD model in weeks, the expected spend over the next 364 days:

    >>> bgf = BetaGeoFitter.from_params(
    ...     r=0.243, alpha=4.414, a=0.793, b=2.426, time_unit_days=7.0
    ... )
    >>> known.customer_lifetime_value(
    ...     bgf, [4, 4, 0], [38, 8, 0], [40, 40, 40], [30.0, 30.0, 0.0], time_days=364
    ... ).round(1)
    array([99.6,  3.5,  8.7])
    """

    _param_names = ("p", "q", "v")
    _label = "Gamma-Gamma"

    def __init__(self, penalizer: float = 0.0) -> None:
        self.penalizer = penalizer

    @classmethod
    def from_params(cls, p: float, q: float, v: float) -> GammaGammaFitter:
        """Build a fitted model from known positive parameters ``p``, ``q``, ``v``."""
        model = cls()
        model._set_params_from({"p": p, "q": q, "v": v})
        return model

    p_ = fitted_param("p")
    q_ = fitted_param("q")
    v_ = fitted_param("v")

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
        penalizer = common.check_penalizer(self.penalizer)
        x, m, w = _validate_fit_inputs(frequency, monetary_value, weights)
        use = (x > 0) & (m > 0) & (w > 0)
        if use.sum() < 3:
            raise ValueError(
                "Gamma-Gamma needs at least 3 customers with frequency > 0 and "
                f"monetary_value > 0; got {int(use.sum())}"
            )
        xs, ms, ws = common.compress((x[use], m[use]), w[use])
        mean_m = (ws @ ms) / ws.sum()
        grid = [
            # match the population mean spend p v / (q - 1) = mean_m
            np.log([p0, q0, mean_m * (q0 - 1.0) / p0])
            for p0 in (0.5, 2.0, 6.0)
            for q0 in (1.5, 4.0, 12.0)
        ]
        self.n_used_ = int(use.sum())
        self.n_ignored_ = int(x.shape[0] - use.sum())
        self._maximize(_gg_loglik_and_grad, (xs, ms), ws, grid, penalizer)
        return self

    def population_mean_spend(self) -> float:
        """Population mean spend per transaction ``p v / (q - 1)``.

        Raises
        ------
        ValueError
            If ``q <= 1`` (the mean does not exist).
        """
        self._check_fitted()
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
        x = common.as_float_array("frequency", frequency)
        m = common.as_float_array("monetary_value", monetary_value)
        common.check_finite_nonnegative("frequency", x)
        bad = ~np.isfinite(m) & (x > 0)
        if np.broadcast_to(bad, np.broadcast_shapes(x.shape, m.shape)).any():
            where = common.bad_indices(bad)
            raise ValueError(f"monetary_value must be finite; NaN or inf at {where}")
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
