"""Customer satisfaction (客户满意度) from survey events: a score and a decision class.

The policy names the satisfaction survey event types (``satisfaction.event_types``,
default ``nps`` and ``satisfaction``). When the champion's features include
the value features of such a type (it was a valued event type in training,
:mod:`churnclv.features._sql_events`), every scored customer gets

* ``satisfaction_score``: the customer's latest survey value before ``as_of``
  (of the most recent of the named types; null when the customer never
  answered);
* ``satisfaction_class``: ``high`` when the score is at or above the policy's
  ``satisfaction.high``, ``medium`` at or above ``satisfaction.medium``, else
  ``low`` (null without a score). The default thresholds 9 and 7 are the NPS
  classes on a 0-10 scale: promoters (9-10) are ``high``, passives (7-8)
  ``medium``, detractors (0-6) ``low``.

Both are computed from the feature columns, so batch scores, ``/predict`` and
the snapshot behind ``/lookup`` agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from churnclv._policy import Policy

__all__ = ["SATISFACTION_COLUMNS", "satisfaction_class", "satisfaction_columns"]

#: The satisfaction columns of scores and answers, in output order.
SATISFACTION_COLUMNS = ("satisfaction_score", "satisfaction_class")


def satisfaction_class(score: np.ndarray, policy: Policy) -> np.ndarray:
    """``high`` / ``medium`` / ``low`` per score by the policy's thresholds (None for NaN).

    Examples
    --------
    >>> import numpy as np
    >>> from churnclv.decisions import Policy
    >>> satisfaction_class(np.array([10, 9, 8.5, 7, 6.9, 0, np.nan]), Policy()).tolist()
    ['high', 'high', 'medium', 'medium', 'low', 'low', None]
    """
    score = np.asarray(score, dtype=float)
    cls = np.where(
        score >= policy.satisfaction_high,
        "high",
        np.where(score >= policy.satisfaction_medium, "medium", "low"),
    ).astype(object)
    cls[np.isnan(score)] = None
    return cls


def satisfaction_columns(features: Mapping[str, Any] | Any, policy: Policy) -> dict[str, Any]:
    """``satisfaction_score`` and ``satisfaction_class`` of feature rows (a frame or arrays).

    The latest value among the policy's survey event types whose value
    features the rows carry (``ev_<type>_value_last`` and
    ``ev_<type>_value_days_since``); all null when none does.
    """
    n = len(features["customer_id"])
    score = np.full(n, np.nan)
    age = np.full(n, np.inf)
    for et in policy.satisfaction_event_types:
        last, since = f"ev_{et}_value_last", f"ev_{et}_value_days_since"
        if last not in features or since not in features:
            continue
        value = np.asarray(features[last], dtype=float)
        days = np.nan_to_num(np.asarray(features[since], dtype=float), nan=np.inf)
        newer = ~np.isnan(value) & (days < age)
        score = np.where(newer, value, score)
        age = np.where(newer, days, age)
    return {"satisfaction_score": score, "satisfaction_class": satisfaction_class(score, policy)}


def satisfaction_section(scored: Any) -> str:
    """The report's satisfaction section: customers, mean churn risk and value at risk per
    ``satisfaction_class`` (empty when no scored customer has a satisfaction score)."""
    import html

    if "satisfaction_class" not in scored or not scored["satisfaction_class"].notna().any():
        return ""
    known = scored[scored["satisfaction_class"].notna()]
    rows = []
    for cls in ("high", "medium", "low"):
        part = known[known["satisfaction_class"] == cls]
        if part.empty:
            continue
        risk = part["churn_probability"].mean()
        at_risk = (part["churn_probability"] * part["predicted_value"]).sum()
        cells = [cls, f"{len(part):,}", f"{part['satisfaction_score'].mean():.1f}"]
        cells += [f"{risk:.1%}", f"{at_risk:,.0f}"]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = ["Satisfaction", "Customers", "Mean score", "Mean churn probability", "Value at risk"]
    return (
        "<h2>Customer satisfaction</h2>"
        f"<p>{len(known):,} of {len(scored):,} customers answered a satisfaction survey; "
        "their latest answer before the scoring date sets the class (on a 0-10 NPS scale: "
        "high = promoters 9-10, medium = passives 7-8, low = detractors 0-6).</p>"
        "<table><thead><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )
