"""Batch scoring: feature rows -> champion models -> decisions and reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnclv._clv_fields import CLV_COLUMNS, clv_columns
from churnclv._reasons import reasons
from churnclv._satisfaction import SATISFACTION_COLUMNS, satisfaction_columns
from churnclv.decisions import Policy, decide, select_under_budget
from churnclv.serving._uplift_scoring import uplift_decisions
from churnclv.training import Champion
from churnclv.training._model import Columns

__all__ = ["DECISION_EXTRAS", "SCORE_COLUMNS", "predict", "score_features"]

#: The feature columns score_features carries into decisions and its output.
_DECISION_COLUMNS = frozenset(
    {
        "customer_id",
        "as_of",
        "recency_days",
        "tenure_days",
        "gap_mean_days",
        "frequency",
        "monetary_total",
    }
)

SCORE_COLUMNS = (
    "customer_id",
    "churn_probability",
    "predicted_value",
    "value_tier",
    "risk_band",
    "lifecycle_stage",
    "rfm_segment",
    "action",
    "expected_net_gain",
)

#: Decision columns after the DESIGN §7 ones, in batch scores and service answers alike.
DECISION_EXTRAS = ("potential_high_value", "holdout", "action_basis")


def predict(
    features: Columns,
    champion: Champion,
    predictions: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[Columns, np.ndarray, np.ndarray, np.ndarray]:
    """The model step shared by batch and online scoring.

    ``features`` is a frame or a mapping of column arrays. Returns the
    features with the BTYD columns the churn model needs, the churn model's
    input matrix (for its contributions), P(churn) and the predicted value
    (``predictions`` when given, e.g. computed on Spark executors). BTYD
    columns and matrices are built once and shared by all the model calls.
    """
    features = champion.churn.with_btyd(features)
    x_churn = champion.churn.matrix(features)
    if predictions is not None:
        return features, x_churn, *predictions
    p = champion.churn.predict(x_churn)
    return features, x_churn, p, champion.value.predict(champion.value.matrix(features))


def score_features(
    features: pd.DataFrame,
    champion: Champion,
    policy: Policy,
    *,
    budget: float | None = None,
    with_reasons: bool = True,
    predictions: tuple[np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Predictions and decisions for precomputed feature rows (one cutoff).

    Returns the DESIGN §7 columns, then ``as_of``, ``model_version``,
    ``selected`` (in the campaign: the action pays and fits the ``budget``),
    ``action_cost``, ``expected_saved_value``, :data:`DECISION_EXTRAS`
    (``potential_high_value``, ``holdout``, ``action_basis``), ``uplift_<action>`` with an
    uplift champion, the marketer fields (:mod:`churnclv._clv_fields`: predicted orders, next
    order date, CLV to date and ahead, percentile ranks), ``satisfaction_score`` and
    ``satisfaction_class`` (:mod:`churnclv._satisfaction`) and ``reasons`` (the top three
    churn-model contributions in plain words). ``predictions`` (P(churn),
    predicted value) computed elsewhere, e.g. on Spark executors, skip the
    model calls; decisions and reasons are the same code either way.
    """
    # Decisions read a few columns; copying only those keeps a one-customer call cheap.
    keep = [c for c in features.columns if c in _DECISION_COLUMNS]
    scored = features[keep].copy()
    features, x_churn, scored["churn_probability"], scored["predicted_value"] = predict(
        features, champion, predictions
    )
    scored = decide(
        scored,
        policy,
        churn_horizon_days=champion.churn_horizon_days,
        reference=champion.value.reference_ or None,
    )
    learned = uplift_decisions(features, scored, champion, policy)
    scored = scored.assign(**learned)
    scored["model_version"] = champion.model_version
    p, v, stage = (scored[c] for c in ("churn_probability", "predicted_value", "lifecycle_stage"))
    scored = scored.assign(**clv_columns(features, p, v, stage, champion, policy))
    scored = scored.assign(**satisfaction_columns(features, policy))
    scored = select_under_budget(scored, policy, budget)
    extra = ["as_of", "model_version", "selected", "action_cost", "expected_saved_value"]
    extra += [c for c in DECISION_EXTRAS if c in scored]
    extra += [c for c in learned if c.startswith("uplift_")]
    extra.extend(CLV_COLUMNS)
    extra.extend(SATISFACTION_COLUMNS)
    if with_reasons:
        why = reasons(features, champion.churn.contributions(features, x_churn))
        scored["reasons"] = ["; ".join(r["text"] for r in items) for items in why]
        extra.append("reasons")
    out = scored[[*SCORE_COLUMNS, *extra]].reset_index(drop=True)
    if with_reasons:
        out.attrs["reasons_detail"] = _Shared(why)  # structured reasons, for the service's JSON
    return out


class _Shared(list):
    """A list pandas shares instead of deep-copying: every operation on a frame deep-copies
    its ``attrs``, which took seconds per call on a million customers' reasons."""

    def __deepcopy__(self, memo: dict[int, object]) -> _Shared:
        return self
