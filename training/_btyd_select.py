"""The purchase model of the BTYD features, chosen by holdout log-likelihood.

BG/NBD and MBG/NBD (:data:`~churnclv.training._btyd.PURCHASE_MODELS`) are each
fitted on a random part of one cross-section's customers and judged by the
mean log-likelihood of the other, customer-disjoint, part: the better one
gives the hybrid's ``btyd_*`` features. Ties and failures keep BG/NBD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnclv.training._btyd import PURCHASE_MODELS, _rfm_arrays

__all__ = ["PurchaseModelChoice", "choose_purchase_model"]

_TIME_UNIT_DAYS = 7.0
_PENALIZER = 0.001
#: Share of the customers held out from the fit to judge it.
HOLDOUT_SHARE = 0.3


@dataclass(frozen=True)
class PurchaseModelChoice:
    """The chosen purchase model and each model's mean holdout log-likelihood.

    ``loglik`` maps ``"bgnbd"`` / ``"mbgnbd"`` to the mean per-customer
    log-likelihood on the held-out customers (NaN when the model cannot be
    fitted).
    """

    model: str
    loglik: dict[str, float]

    def metrics(self) -> dict[str, float]:
        """Run metrics ``btyd_holdout_loglik_<model>`` (finite values only)."""
        return {
            f"btyd_holdout_loglik_{k}": float(v) for k, v in self.loglik.items() if np.isfinite(v)
        }


def choose_purchase_model(rfm: pd.DataFrame, *, seed: int = 0) -> PurchaseModelChoice:
    """Fit BG/NBD and MBG/NBD on part of ``rfm``'s customers, keep the better on the rest.

    Parameters
    ----------
    rfm : pandas.DataFrame
        One cross-section: ``frequency``, ``recency_days``, ``tenure_days``
        (and ``monetary_mean``, unused), one row per customer.
    seed : int, default 0
        Seed of the random customer split.

    Returns
    -------
    PurchaseModelChoice
        ``"bgnbd"`` unless MBG/NBD's holdout log-likelihood is higher.
    """
    loglik = {name: float("nan") for name in PURCHASE_MODELS}
    if len(rfm) < 20:
        return PurchaseModelChoice("bgnbd", loglik)
    x, tx, big_t, _ = _rfm_arrays(rfm, _TIME_UNIT_DAYS)
    held = np.random.default_rng(seed).random(len(x)) < HOLDOUT_SHARE
    fit, test = ~held, held
    if not (test.any() and (x[fit] > 0).any()):
        return PurchaseModelChoice("bgnbd", loglik)
    for name, cls in PURCHASE_MODELS.items():
        try:
            model = cls(penalizer=_PENALIZER, time_unit_days=_TIME_UNIT_DAYS)
            model.fit(x[fit], tx[fit], big_t[fit])
            params = np.array(model._params())
            ll, _ = model._loglik_and_grad(
                params, x[test], np.minimum(tx[test], big_t[test]), big_t[test]
            )
            loglik[name] = float(np.mean(ll))
        except (ValueError, RuntimeError):
            continue
    best = "mbgnbd" if loglik["mbgnbd"] > loglik["bgnbd"] else "bgnbd"
    if not np.isfinite(loglik["mbgnbd"]):
        best = "bgnbd"
    return PurchaseModelChoice(best, loglik)
