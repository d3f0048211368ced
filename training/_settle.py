"""Settle a training after its evaluation: the customer-holdout verdict and refit, and the
value total's calibration.

Runs between the evaluation and the MLflow run (:func:`settle_design`):

- a kind trained by the customer-holdout design
  (:mod:`churnclv.training._holdout`) that does not beat BG/NBD on its holdout
  is replaced by the BTYD fallback, and the run re-evaluated (the hybrid's
  holdout metrics stay in the run as ``rejected_hybrid_*``);
- a churn model kept by that design is refitted on every customer of every
  labelled cutoff (fitted on all but the latest, calibrated on the latest when
  there are three or more, as :func:`~churnclv.training._fit.fit_churn` does);
  the value model is refitted on the same rows by ``fit_value``'s refit;
- a trained value model evaluated out of time gets the calibration of its total
  (:func:`~churnclv.training._total_scale.total_scale`) learned on its
  validation window, shrunk by the drift of the spend level between the
  labelled windows (with a single window, the drift is taken as the prior's
  spread); under the customer-holdout design there is no
  out-of-time window and the scale stays 1. The evaluated model's predicted
  over actual total per decile of prediction is added to the metrics
  (``value_decile_<k>_pred_over_actual``, 1 = highest predictions).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd

from churnclv.training._evaluate import Evaluation, evaluate
from churnclv.training._fallback import BTYDModel
from churnclv.training._fit import ChurnFit, ValueFit, fit_churn, fit_fallback
from churnclv.training._holdout import (
    CUSTOMER_HOLDOUT,
    OUT_OF_TIME,
    design_line,
    holdout_verdict,
)
from churnclv.training._model import BoosterModel
from churnclv.training._plan import Plan
from churnclv.training._total_scale import PRIOR_SD, decile_ratios, total_scale, window_drift

__all__ = ["design_note", "log_design", "settle_design"]

Progress = Callable[[str], None]

_GATED = ("churn_roc_auc", "value_gini", "value_total_ratio")


def settle_design(
    plan: Plan,
    churn: ChurnFit,
    value: ValueFit,
    ev: Evaluation,
    fallbacks: dict[str, str],
    churn_model: BoosterModel | None,
    seed: int,
    say: Progress,
) -> tuple[ChurnFit, ValueFit, Evaluation]:
    """Apply the holdout verdict, the holdout design's churn refit and the value total's
    calibration (module docstring); returns the final churn and value fits and evaluation."""
    losers = holdout_verdict(plan.designs, ev.metrics, fallbacks)
    if losers:
        rejected = {
            f"rejected_hybrid_{k}": v
            for k, v in ev.metrics.items()
            if k in _GATED and k.split("_")[0] in losers
        }
        for kind, why in losers.items():
            model = fit_fallback(kind, why, plan, fallbacks, seed, say)
            if kind == "churn":
                churn = ChurnFit(model)
            else:
                value = ValueFit(model, "btyd_fallback", plan.v_train)
        ev = evaluate(plan, churn.model, value.evaluated, fallbacks, value.candidate_metrics, say)
        ev.metrics |= rejected
    if plan.designs.get("churn") == CUSTOMER_HOLDOUT and "churn" not in fallbacks:
        churn = _refit_churn(plan, churn, fallbacks, churn_model, seed, say)
    _calibrate_total(plan, value, ev, fallbacks)
    return churn, value, ev


def _refit_churn(
    plan: Plan,
    churn: ChurnFit,
    fallbacks: dict[str, str],
    churn_model: BoosterModel | None,
    seed: int,
    say: Progress,
) -> ChurnFit:
    """The churn model refitted on every customer of every labelled cutoff (the evaluated
    one when that cannot be fitted)."""
    rows = plan.labelled_rows("churn")
    say(f"churn model refitted on all {len(rows):,} labelled rows")
    refit = fit_churn(
        dataclasses.replace(plan, c_train=rows),
        dict(fallbacks),
        copy.deepcopy(churn_model),
        seed,
        lambda _msg: None,
    )
    if isinstance(refit.model, BTYDModel):
        return churn
    refit.refit_rows = len(rows)
    return refit


def _calibrate_total(
    plan: Plan, value: ValueFit, ev: Evaluation, fallbacks: dict[str, str]
) -> None:
    """Attach the total's calibration to the value model; add it and the decile ratios
    to the metrics."""
    if "value" in fallbacks or ev.p_value is None:
        return
    ev.metrics |= {
        f"value_decile_{k}_pred_over_actual": r
        for k, r in enumerate(decile_ratios(ev.yv, ev.p_value), start=1)
        if np.isfinite(r)
    }
    if plan.designs.get("value") != OUT_OF_TIME:
        value.model.attach(total_scale=1.0)
        ev.metrics["value_total_scale"] = 1.0
        return
    h = plan.value_horizon_days
    done = plan.frame[plan.frame["as_of"] + pd.Timedelta(days=h) <= plan.as_of]
    drift = window_drift(done, h)
    cal = total_scale(ev.yv, ev.p_value, drift=drift if np.isfinite(drift) else PRIOR_SD)
    cal["drift"] = drift
    value.model.attach(total_scale=cal["scale"])
    for name in ("scale", "ratio", "se", "drift", "weight"):
        if np.isfinite(cal[name]):
            ev.metrics[f"value_total_scale{'' if name == 'scale' else '_' + name}"] = cal[name]


def design_note(plan: Plan) -> str:
    """One line saying which evaluation design each kind used and why."""
    short = {"churn": plan.churn_short, "value": plan.value_short}
    cuts = {"churn": str(plan.churn_cuts[-1].date()), "value": str(plan.value_cuts[-1].date())}
    return design_line(plan.designs, short, cuts)


def log_design(plan: Plan) -> None:
    """Tag the active run ``evaluation`` (``customer_holdout`` when any kind used it, else
    ``out_of_time``) and ``evaluation_design_<kind>``."""
    import mlflow

    mlflow.set_tags(
        {
            "evaluation": plan.evaluation,
            **{f"evaluation_design_{k}": d for k, d in plan.designs.items()},
            "evaluation_design": design_note(plan),
        }
    )
