"""BG/NBD + Gamma-Gamma ("buy 'til you die") outputs of an RFM summary.

The models themselves live in :mod:`._bgnbd` (:class:`BetaGeoFitter`) and
:mod:`._gamma_gamma` (:class:`GammaGammaFitter`). This module fits the pair on
a customer summary (:func:`fit_btyd`), scores summaries with a fitted pair
(:func:`apply_btyd`, :func:`btyd_arrays`, :func:`btyd_features`), and turns a
fitted pair into plain JSON-able parameters and back
(:meth:`BTYDModels.to_params`, :meth:`BTYDModels.from_params`). These helpers
take days and fit the BG/NBD model in weeks by default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from churnclv.training._bgnbd import BetaGeoFitter
from churnclv.training._btyd_common import as_float_array, bad_indices, check_finite_nonnegative
from churnclv.training._gamma_gamma import GammaGammaFitter
from churnclv.training._mbgnbd import ModifiedBetaGeoFitter

__all__ = [
    "BTYD_INPUTS",
    "PURCHASE_MODELS",
    "BTYDModels",
    "apply_btyd",
    "btyd_arrays",
    "btyd_features",
    "fit_btyd",
]

#: The customer summary BG/NBD and Gamma-Gamma read (see :func:`fit_btyd`).
BTYD_INPUTS = ("frequency", "recency_days", "tenure_days", "monetary_mean")
#: The purchase models by name: BG/NBD and MBG/NBD (one-time buyers may have dropped out).
PURCHASE_MODELS: dict[str, type[BetaGeoFitter]] = {
    "bgnbd": BetaGeoFitter,
    "mbgnbd": ModifiedBetaGeoFitter,
}
#: The columns of :func:`apply_btyd`.
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
        Purchase model (a :class:`BetaGeoFitter` or a
        :class:`ModifiedBetaGeoFitter`), in units of ``bgf.time_unit_days`` days.
    ggf : GammaGammaFitter
        Spend model.
    """

    bgf: BetaGeoFitter
    ggf: GammaGammaFitter

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> BTYDModels:
        """The fitted pair of stored parameters (:meth:`to_params`' dict; horizons ignored).

        ``params["bgnbd"]`` holds the purchase model's ``r, alpha, a, b``;
        ``params["purchase_model"]`` (default ``"bgnbd"``) names the model.

        Examples
        --------
        >>> from churnclv.training._btyd import BTYDModels
        >>> models = BTYDModels.from_params(
        ...     {
        ...         "bgnbd": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
        ...         "gamma_gamma": {"p": 6.25, "q": 3.74, "v": 15.44},
        ...         "time_unit_days": 7.0,
        ...     }
        ... )
        >>> models.bgf.time_unit_days, round(models.ggf.population_mean_spend(), 2)
        (7.0, 35.22)
        """
        bg, gg = params["bgnbd"], params["gamma_gamma"]
        purchase = PURCHASE_MODELS[params.get("purchase_model", "bgnbd")]
        return cls(
            bgf=purchase.from_params(
                bg["r"], bg["alpha"], bg["a"], bg["b"], time_unit_days=params["time_unit_days"]
            ),
            ggf=GammaGammaFitter.from_params(gg["p"], gg["q"], gg["v"]),
        )

    def to_params(self, churn_horizon_days: float, value_horizon_days: float) -> dict[str, Any]:
        """Plain JSON-able parameters of the pair and the horizons they predict over."""
        kind = "mbgnbd" if isinstance(self.bgf, ModifiedBetaGeoFitter) else "bgnbd"
        return {
            "purchase_model": kind,
            "bgnbd": {k: float(v) for k, v in self.bgf.params_.items()},
            "gamma_gamma": {k: float(v) for k, v in self.ggf.params_.items()},
            "time_unit_days": float(self.bgf.time_unit_days),
            "churn_horizon_days": float(churn_horizon_days),
            "value_horizon_days": float(value_horizon_days),
        }


def _rfm_column(rfm: Mapping[str, Any] | pd.DataFrame, name: str) -> np.ndarray:
    """One RFM column as float64 (a Series' missing values as NaN), named in errors."""
    values = rfm[name]
    if hasattr(values, "to_numpy"):
        values = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return as_float_array(name, values)


def _rfm_arrays(
    rfm: Mapping[str, Any] | pd.DataFrame, time_unit_days: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``x``, ``t_x``, ``T`` (in time units) and the mean spend of an RFM frame or a
    mapping of column arrays (the service scores small batches without frames)."""
    missing = [c for c in BTYD_INPUTS if c not in rfm]
    if missing:
        raise ValueError(f"rfm is missing columns {missing}; needs {list(BTYD_INPUTS)}")
    x, rec, ten, mon = (_rfm_column(rfm, c) for c in BTYD_INPUTS)
    check_finite_nonnegative("recency_days", rec)
    check_finite_nonnegative("tenure_days", ten)
    over = rec > ten
    if over.any():
        raise ValueError(f"recency_days must be <= tenure_days; violated at {bad_indices(over)}")
    tx_days = np.where(x == 0, 0.0, ten - rec)  # one-time buyers: t_x = 0 by definition
    return x, tx_days / time_unit_days, ten / time_unit_days, mon


def fit_btyd(
    rfm: pd.DataFrame,
    *,
    time_unit_days: float = 7.0,
    penalizer: float = 0.0,
    gg_penalizer: float = 0.0,
    purchase_model: str = "bgnbd",
) -> BTYDModels:
    """Fit BG/NBD (or MBG/NBD) and Gamma-Gamma on an RFM frame.

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
    if purchase_model not in PURCHASE_MODELS:
        raise ValueError(f"purchase_model must be one of {sorted(PURCHASE_MODELS)}")
    purchase = PURCHASE_MODELS[purchase_model]
    bgf = purchase(penalizer=penalizer, time_unit_days=time_unit_days).fit(x, tx, big_t)
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
