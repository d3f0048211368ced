"""Out-of-time evaluation of the models and of the RFM and BTYD baselines on the same rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from churnclv.training._metrics import churn_metrics, value_metrics
from churnclv.training._plan import Plan, purchase_model_name
from churnclv.training._scorable import ScorableModel

__all__ = ["Evaluation", "baseline_metrics", "churn_worth", "evaluate", "recency_score"]


def recency_score(frame: pd.DataFrame) -> np.ndarray:
    """RFM heuristic churn score: recency relative to the usual gap (bigger = likelier)."""
    gap = frame["gap_mean_days"].fillna(frame["gap_mean_days"].median()).fillna(30.0)
    return (frame["recency_days"] / gap.clip(lower=1.0)).to_numpy(float)


def churn_worth(frame: pd.DataFrame) -> np.ndarray:
    """What each churn validation customer is worth for ``value_captured_top_decile``:
    net spend to date, clipped at 0 (zeros when the frame lacks ``monetary_total``)."""
    if "monetary_total" not in frame:
        return np.zeros(len(frame))
    return frame["monetary_total"].to_numpy(float, na_value=0.0).clip(0, None)


@dataclass
class Evaluation:
    """What was measured on the validation rows.

    ``metrics`` holds the model's and the baselines' metrics; ``reasons`` says,
    per model kind, how it was judged when that was not its own prediction (a
    fallback) or why nothing was measured (``"none: ..."``). ``p_churn`` and
    ``p_value`` are the predictions judged (None when nothing was), ``yc`` and
    ``yv`` the labels of the churn and value validation rows.
    """

    metrics: dict[str, float]
    yc: np.ndarray
    yv: np.ndarray
    p_churn: np.ndarray | None = None
    p_value: np.ndarray | None = None
    reasons: dict[str, str] = field(default_factory=dict)


def evaluate(
    plan: Plan,
    churn: ScorableModel,
    value: ScorableModel | None,
    fallbacks: Mapping[str, str],
    candidate_metrics: Mapping[str, float],
    say: Callable[[str], None],
) -> Evaluation:
    """Judge the models on their validation rows, beside the baselines on the same rows.

    ``value`` is the value model fitted on the training rows (None for the BTYD
    fallback). A fallback is judged as the BG/NBD method fitted as of the
    validation cutoff on the history before it (its pair as of ``as_of`` has
    seen the validation labels); with no labelled rows nothing is measured.
    ``candidate_metrics`` (the value selection's) lead the metrics.
    """
    c_valid, v_valid = plan.c_valid, plan.v_valid
    ev = Evaluation(
        dict(candidate_metrics),
        c_valid["churned"].to_numpy(int),
        v_valid["future_value"].to_numpy(float),
    )
    btyd = purchase_model_name(plan.purchase.model)
    ev.p_churn = _judged(
        ev,
        "churn",
        c_valid,
        None if "churn" in fallbacks else churn,
        "btyd_p_no_purchase_churn",
        btyd,
    )
    ev.p_value = _judged(ev, "value", v_valid, value, "btyd_clv_value", btyd)
    for kind, why in ev.reasons.items():
        if why.startswith("none"):
            say(f"no {kind} metrics ({why.removeprefix('none: ')})")
    if ev.p_churn is not None:
        ev.metrics |= churn_metrics(ev.yc, ev.p_churn, value=churn_worth(c_valid))
    if ev.p_value is not None:
        ev.metrics |= value_metrics(ev.yv, ev.p_value)
    ev.metrics |= baseline_metrics(c_valid, ev.yc, v_valid, ev.yv, plan.value_horizon_days)
    from churnclv.training._evaluate_btyd import second_btyd_metrics

    ev.metrics |= second_btyd_metrics(plan)
    return ev


#: How a fallback is judged, by kind: the BTYD method fitted as of the validation cutoff.
_BTYD_METHOD = {"churn": "{model}", "value": "{model} + Gamma-Gamma"}


def _judged(
    ev: Evaluation,
    kind: str,
    rows: pd.DataFrame,
    model: ScorableModel | None,
    column: str,
    btyd: str,
) -> np.ndarray | None:
    """The predictions ``kind`` is judged by on ``rows``: ``model``'s, else the BTYD column's.

    Records in ``ev.reasons`` how it was judged when not by ``model``, or why
    it cannot be (then None).
    """
    if rows.empty:
        ev.reasons[kind] = "none: no customer has a purchase before the validation cutoff"
        return None
    if model is not None:
        return model.predict(rows)
    if rows[column].notna().all():
        method = _BTYD_METHOD[kind].format(model=btyd)
        ev.reasons[kind] = f"{method} fitted as of the validation cutoff"
        return rows[column].to_numpy(float)
    ev.reasons[kind] = f"none: {btyd} cannot be fitted as of the validation cutoff"
    return None


def baseline_metrics(
    c_valid: pd.DataFrame,
    yc: np.ndarray,
    v_valid: pd.DataFrame,
    yv: np.ndarray,
    value_horizon_days: float,
) -> dict[str, float]:
    """The RFM and BTYD baselines' metrics on the validation rows.

    RFM: recency ranks churn (:func:`recency_score`), the historical run rate
    ranks value. BTYD: BG/NBD P(no purchase) and 1 - P(alive) for churn,
    BG/NBD + Gamma-Gamma CLV for value, each fitted on its cutoff's own history.
    """
    metrics: dict[str, float] = {}
    worth = churn_worth(c_valid)
    if not c_valid.empty:
        rfm = churn_metrics(yc, recency_score(c_valid), value=worth)
        metrics |= {f"baseline_rfm_{k}": v for k, v in rfm.items()}
    if not v_valid.empty:
        run_rate = (
            v_valid["monetary_total"].clip(lower=0)
            / v_valid["tenure_days"].clip(lower=30)
            * value_horizon_days
        ).to_numpy(float)
        metrics |= {f"baseline_rfm_{k}": v for k, v in value_metrics(yv, run_rate).items()}
    if not c_valid.empty and c_valid["btyd_p_alive"].notna().all():
        p_bg = c_valid["btyd_p_no_purchase_churn"].to_numpy(float)
        bg = churn_metrics(yc, p_bg, value=worth)
        metrics |= {f"baseline_bgnbd_{k}": v for k, v in bg.items()}
        p_dead = 1 - c_valid["btyd_p_alive"].to_numpy(float)
        metrics["baseline_bgnbd_palive_churn_roc_auc"] = churn_metrics(yc, p_dead)["churn_roc_auc"]
    if not v_valid.empty and v_valid["btyd_clv_value"].notna().all():
        clv = v_valid["btyd_clv_value"].to_numpy(float)
        metrics |= {f"baseline_bgnbd_gg_{k}": v for k, v in value_metrics(yv, clv).items()}
    return metrics
