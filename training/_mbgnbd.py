"""The MBG/NBD model of repeat purchases (Batislam, Denizel & Filiztekin 2007).

The modified BG/NBD differs from BG/NBD (:mod:`._bgnbd`) in one assumption: a
customer may drop out right after *any* purchase, the first one included, so a
one-time buyer is alive with probability below 1 (under BG/NBD exactly 1). The
fitting, validation, time units and horizon predictions are those of
:class:`~churnclv.training.BetaGeoFitter`; only the likelihood, P(alive) and the
posterior of the dropout probability given alive (``Beta(a, b + x + 1)``
instead of ``Beta(a, b + x)``) change.
"""

from __future__ import annotations

import numpy as np
from scipy.special import betaln, digamma, gammaln

from churnclv.training._bgnbd import BetaGeoFitter

__all__ = ["ModifiedBetaGeoFitter", "mbgnbd_loglik_and_grad"]


def mbgnbd_loglik_and_grad(
    params: np.ndarray, x: np.ndarray, tx: np.ndarray, big_t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row MBG/NBD log-likelihood and its gradient w.r.t. (r, alpha, a, b).

    ``L = B(a, b+x+1)/B(a, b) * Gamma(r+x) alpha^r / Gamma(r)
    * [(alpha+T)^-(r+x) + a/(b+x) (alpha+t_x)^-(r+x)]`` (Batislam et al. 2007,
    eq. 4), the second term present for every ``x`` (``x = 0`` included).
    """
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x + 1.0) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + big_t)
    a4 = np.log(a) - np.log(b + x) - (r + x) * np.log(alpha + tx)
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
    psi_abx = digamma(a + b + x + 1.0)
    d_a = psi_ab - psi_abx + w4 / a
    d_b = digamma(b + x + 1.0) - psi_abx - digamma(b) + psi_ab - w4 / (b + x)
    return ll, np.stack([d_r, d_alpha, d_a, d_b])


class ModifiedBetaGeoFitter(BetaGeoFitter):
    """MBG/NBD model of repeat-purchase counts (Batislam, Denizel & Filiztekin 2007).

    As :class:`~churnclv.training.BetaGeoFitter` (purchases at Poisson rate
    ``lambda ~ Gamma(r, alpha)`` while alive, dropout with probability
    ``p ~ Beta(a, b)``), except that the customer may drop out after every
    purchase *including the first*: one-time buyers get P(alive) < 1, and a
    long silence after one purchase lowers it.

    Parameters
    ----------
    penalizer : float, default 0.0
        Coefficient of an L2 penalty on ``(r, alpha, a, b)`` added to the mean
        negative log-likelihood.
    time_unit_days : float, default 1.0
        Number of days in the time unit of ``recency``, ``T`` and ``t``.

    Attributes
    ----------
    params_ : dict of str to float
        Fitted ``{"r", "alpha", "a", "b"}``.
    log_likelihood_ : float
        Total (weighted) log-likelihood at the optimum, without the penalty.
    converged_ : bool
        Whether L-BFGS-B reported success for the best start.
    n_iter_ : int
        Iterations of the best start.
    n_unique_ : int
        Number of distinct ``(x, t_x, T)`` rows the likelihood was evaluated on.

    See Also
    --------
    BetaGeoFitter : The BG/NBD model (one-time buyers always alive).

    Notes
    -----
    ``P(alive | x, t_x, T) = 1 / (1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x))``
    for every ``x``; the conditional expected purchases are BG/NBD's with ``b``
    replaced by ``b + 1`` in the posterior of ``p``.

    Examples
    --------
    >>> from churnclv import ModifiedBetaGeoFitter
    >>> mbg = ModifiedBetaGeoFitter(time_unit_days=7.0).fit(
    ...     frequency=[0, 1, 4, 2, 0, 6, 3, 1],
    ...     recency=[0, 30, 10, 36, 0, 38, 5, 2],
    ...     T=[40] * 8,
    ... )
    >>> mbg.converged_, sorted(mbg.params_)
    (True, ['a', 'alpha', 'b', 'r'])

    With known parameters, a one-time buyer seen 40 weeks ago is alive with
    probability below 1, lower than one who bought 2 weeks ago:

    >>> model = ModifiedBetaGeoFitter.from_params(r=0.5, alpha=5.0, a=0.8, b=2.5)
    >>> model.conditional_probability_alive([0, 0], [0, 0], [40, 2]).round(2)
    array([0.51, 0.73])
    """

    _label = "MBG/NBD"
    _loglik_and_grad = staticmethod(mbgnbd_loglik_and_grad)
    _b_shift = 1.0

    def _log_odds_dead(self, x: np.ndarray, tx: np.ndarray, big_t: np.ndarray) -> np.ndarray:
        r, alpha, a, b = self._params()
        return np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + big_t) - np.log(alpha + tx))

    def conditional_probability_alive(
        self, frequency: object, recency: object, T: object
    ) -> np.ndarray:
        """P(customer is still alive at ``T`` | x, t_x, T), below 1 for every customer.

        Parameters
        ----------
        frequency, recency, T : array-like
            As in :meth:`fit` (broadcast against each other).

        Returns
        -------
        numpy.ndarray
            Probabilities in ``(0, 1)``.
        """
        return super().conditional_probability_alive(frequency, recency, T)
