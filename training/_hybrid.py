"""BTYD outputs as features of the gradient-boosted models (the hybrid), point in time.

During training each cutoff's BG/NBD + Gamma-Gamma pair is fitted on that
cutoff's cross-section only (rows before the cutoff), so no label ever leaks
into a feature. For scoring, the pair fitted as of the training ``as_of`` is
stored with the model as plain parameters and applied to any frame, one
customer or millions, identically.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from churnclv.training._btyd import BTYDModels, btyd_arrays, fit_btyd

__all__ = [
    "BTYD_COLUMNS",
    "btyd_column_arrays",
    "btyd_columns",
    "fit_params",
    "stack_btyd",
]

BTYD_COLUMNS = (
    "btyd_p_alive",
    "btyd_p_no_purchase_churn",
    "btyd_expected_purchases_churn",
    "btyd_expected_purchases_value",
    "btyd_expected_spend",
    "btyd_clv_value",
)
_TIME_UNIT_DAYS = 7.0
_PENALIZER = 0.001


def fit_params(
    rfm: pd.DataFrame,
    churn_horizon_days: float,
    value_horizon_days: float,
    purchase_model: str = "bgnbd",
) -> dict[str, Any] | None:
    """Fit BG/NBD (or ``purchase_model``) + Gamma-Gamma on one cross-section; None when it
    cannot be fitted."""
    try:
        models = fit_btyd(
            rfm,
            time_unit_days=_TIME_UNIT_DAYS,
            penalizer=_PENALIZER,
            purchase_model=purchase_model,
        )
    except ValueError:
        return None
    if models.ggf.params_["q"] <= 1:  # undefined mean spend: no BTYD features for this window
        return None
    return models.to_params(churn_horizon_days, value_horizon_days)


def btyd_columns(rfm: pd.DataFrame, params: dict[str, Any] | None) -> pd.DataFrame:
    """The hybrid's BTYD feature columns for ``rfm`` (NaN everywhere without params)."""
    return pd.DataFrame(btyd_column_arrays(rfm, params), index=rfm.index)


def btyd_column_arrays(
    rfm: Mapping[str, Any] | pd.DataFrame, params: dict[str, Any] | None
) -> dict[str, np.ndarray]:
    """:func:`btyd_columns` as arrays, for a frame or a mapping of column arrays."""
    n = len(rfm) if isinstance(rfm, pd.DataFrame) else len(rfm["frequency"])
    if params is None or n == 0:
        return {c: np.full(n, np.nan) for c in BTYD_COLUMNS}
    p_alive, spend, ((e_churn, p_none_churn), (e_value, _)) = btyd_arrays(
        BTYDModels.from_params(params),
        rfm,
        (params["churn_horizon_days"], params["value_horizon_days"]),
    )
    return {
        "btyd_p_alive": p_alive,
        "btyd_p_no_purchase_churn": p_none_churn,
        "btyd_expected_purchases_churn": e_churn,
        "btyd_expected_purchases_value": e_value,
        "btyd_expected_spend": spend,
        "btyd_clv_value": e_value * spend,
    }


def stack_btyd(
    frame: pd.DataFrame,
    churn_horizon_days: float,
    value_horizon_days: float,
    *,
    purchase_model: str = "bgnbd",
) -> pd.DataFrame:
    """Add the BTYD columns to a feature frame, fitting one BG/NBD + Gamma-Gamma pair per cutoff.

    Each cutoff's pair is fitted on that cutoff's rows only (point in time), so
    the columns are what the hybrid models were trained with: P(alive),
    expected purchases over each horizon, expected spend and CLV.

    Parameters
    ----------
    frame : DataFrame
        Output of :func:`churnclv.build_features` (one or many cutoffs).
    churn_horizon_days, value_horizon_days : float
        Horizons of the expected purchases and of the CLV.
    purchase_model : {"bgnbd", "mbgnbd"}, default "bgnbd"
        The purchase model: BG/NBD, or MBG/NBD (Batislam et al. 2007), under
        which one-time buyers may have dropped out (P(alive) < 1).

    Returns
    -------
    DataFrame
        ``frame`` with the ``btyd_*`` columns added (replaced if present); a
        cutoff with too few repeat buyers to fit gets missing values.

    Examples
    --------
    >>> from churnclv import build_features, generate, stack_btyd
    >>> data = generate(300, seed=1)
    >>> frame = build_features(data.transactions, as_of=["2023-07-01", "2024-01-01"])
    >>> out = stack_btyd(frame, 90, 365)
    >>> sorted(c for c in out.columns if c.startswith("btyd_"))[:3]
    ['btyd_clv_value', 'btyd_expected_purchases_churn', 'btyd_expected_purchases_value']
    >>> bool(out["btyd_p_alive"].between(0, 1).all())
    True
    """
    if purchase_model not in ("bgnbd", "mbgnbd"):
        raise ValueError(f"purchase_model must be 'bgnbd' or 'mbgnbd', got {purchase_model!r}")
    parts = []
    for _, rows in frame.groupby("as_of", sort=True):
        params = fit_params(rows, churn_horizon_days, value_horizon_days, purchase_model)
        parts.append(btyd_columns(rows, params))
    cols = pd.concat(parts).reindex(frame.index) if parts else btyd_columns(frame, None)
    return pd.concat(
        [frame.drop(columns=[c for c in BTYD_COLUMNS if c in frame.columns]), cols], axis=1
    )
