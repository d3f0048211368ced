"""Both BTYD purchase models (BG/NBD and MBG/NBD) as baselines on the validation rows.

The hybrid's ``btyd_*`` columns come from the purchase model chosen by holdout
likelihood (:mod:`._btyd_select`); :func:`churnclv.training._evaluate.baseline_metrics`
judges those columns as ``baseline_bgnbd_*``. This module names each model's
metrics after the model: the chosen one's from the columns, the other fitted
here on the same validation cross-section (as :func:`~._hybrid.stack_btyd`
fits each cutoff on its own rows), so ``baseline_bgnbd_*`` is always BG/NBD's
and ``baseline_mbgnbd_*`` MBG/NBD's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from churnclv.training._evaluate import churn_worth
from churnclv.training._hybrid import btyd_columns, fit_params
from churnclv.training._metrics import churn_metrics, value_metrics

if TYPE_CHECKING:
    import pandas as pd

    from churnclv.training._plan import Plan

__all__ = ["second_btyd_metrics"]

_PREFIXES = ("baseline_{m}_", "baseline_{m}_gg_")


def _refit(rows: pd.DataFrame, model: str, plan: Plan) -> pd.DataFrame | None:
    if rows.empty:
        return None
    params = fit_params(rows, plan.churn_horizon_days, plan.value_horizon_days, model)
    return None if params is None else btyd_columns(rows, params)


def _metrics(
    model: str, plan: Plan, c_cols: pd.DataFrame | None, v_cols: pd.DataFrame | None
) -> dict[str, float]:
    """``baseline_<model>_*`` (churn) and ``baseline_<model>_gg_*`` (value) of BTYD columns."""
    out: dict[str, float] = {}
    c_valid, v_valid = plan.c_valid, plan.v_valid
    if c_cols is not None and c_cols["btyd_p_alive"].notna().all():
        yc = c_valid["churned"].to_numpy(int)
        p_none = c_cols["btyd_p_no_purchase_churn"].to_numpy(float)
        churn = churn_metrics(yc, p_none, value=churn_worth(c_valid))
        out |= {f"baseline_{model}_{k}": v for k, v in churn.items()}
        p_dead = 1 - c_cols["btyd_p_alive"].to_numpy(float)
        out[f"baseline_{model}_palive_churn_roc_auc"] = churn_metrics(yc, p_dead)["churn_roc_auc"]
    if v_cols is not None and v_cols["btyd_clv_value"].notna().all():
        yv = v_valid["future_value"].to_numpy(float)
        value = value_metrics(yv, v_cols["btyd_clv_value"].to_numpy(float))
        out |= {f"baseline_{model}_gg_{k}": v for k, v in value.items()}
    return out


def second_btyd_metrics(plan: Plan) -> dict[str, float]:
    """The holdout log-likelihoods and both purchase models' baseline metrics.

    Returns ``btyd_holdout_loglik_<model>`` and, for BG/NBD and MBG/NBD,
    ``baseline_<model>_*`` / ``baseline_<model>_gg_*`` (the latter override
    the chosen columns' ``baseline_bgnbd_*`` when MBG/NBD was chosen).
    """
    out = plan.purchase.metrics()
    chosen = plan.purchase.model
    with np.errstate(all="ignore"):
        for model in ("bgnbd", "mbgnbd"):
            if model == chosen:
                c_cols, v_cols = plan.c_valid, plan.v_valid
            else:
                c_cols, v_cols = (
                    _refit(plan.c_valid, model, plan),
                    _refit(plan.v_valid, model, plan),
                )
            out |= _metrics(model, plan, c_cols, v_cols)
    return out
