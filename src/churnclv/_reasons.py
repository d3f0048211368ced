"""Reasons: a churn model's top contributions in plain words (a decision-side concept).

Pure functions over feature values and contributions; used by batch scoring
(:func:`churnclv.serving.score_features`) and the online scorer alike. No
BentoML, no MLflow.

A reason is ``{feature, label, value, direction, contribution, text}``
(DESIGN §13): ``label`` names the feature in words, ``direction`` is
``"raises"`` when the contribution is positive (it pushes the churn
probability up) and ``"lowers"`` otherwise, and ``text`` is the customer's
value in plain words followed by the direction, e.g. ``"no purchase for 212
days, 3.0x the usual gap: raises churn risk"``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from churnclv._reasons_events import value_label, value_text

__all__ = ["feature_label", "reason_text", "reasons"]


def _num(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _days(x: float) -> str:
    return f"{x:,.0f} day" + ("" if round(x) == 1 else "s")


_LABELS = {
    "recency_days": "days since last purchase",
    "tenure_days": "days since first purchase",
    "frequency": "repeat purchase days",
    "n_purchases": "number of purchases",
    "monetary_total": "total spend",
    "monetary_mean": "spend per purchase day",
    "returns_count": "number of returns",
    "returns_total": "value of returns",
    "spend_prior_90d": "spend in the 90 days before the last 90",
    "spend_trend_90d": "spend trend, last 90 days vs the 90 before",
    "events_trend_90d": "activity trend, last 90 days vs the 90 before",
    "gap_mean_days": "usual gap between purchases (days)",
    "gap_std_days": "variation of the gap between purchases (days)",
    "overdue_ratio": "days since last purchase / usual gap",
    "days_since_event": "days since last activity",
    "days_since_signup": "days since signup",
    "btyd_p_alive": "chance the customer is still active (BG/NBD)",
    "btyd_p_no_purchase_churn": "chance of no purchase within the churn horizon (BG/NBD)",
    "btyd_expected_purchases_churn": "purchases expected within the churn horizon (BG/NBD)",
    "btyd_expected_purchases_value": "purchases expected within the value horizon (BG/NBD)",
    "btyd_expected_spend": "expected spend per purchase (Gamma-Gamma)",
    "btyd_clv_value": "value expected by BG/NBD and Gamma-Gamma",
}


@functools.lru_cache(maxsize=4096)
def feature_label(feature: str) -> str:
    """A feature column's name in words.

    Examples
    --------
    >>> from churnclv._reasons import feature_label
    >>> feature_label("recency_days"), feature_label("ev_login_30d"), feature_label("plan")
    ('days since last purchase', 'logins in the last 30 days', 'plan')
    """
    if feature in _LABELS:
        return _LABELS[feature]
    if (label := value_label(feature)) is not None:
        return label
    for w in (7, 30, 90, 365):
        if feature == f"tx_count_{w}d":
            return f"purchases in the last {w} days"
        if feature == f"spend_{w}d":
            return f"spend in the last {w} days"
        if feature == f"active_days_{w}d":
            return f"days with a purchase in the last {w} days"
        if feature == f"events_{w}d":
            return f"engagement events in the last {w} days"
        if feature == f"event_active_days_{w}d":
            return f"days with activity in the last {w} days"
    if feature.startswith("days_since_"):
        return f"days since last {feature.removeprefix('days_since_').replace('_', ' ')}"
    if feature.startswith("ev_") and feature[-1] == "d":
        name, _, window = feature.removeprefix("ev_").rpartition("_")
        if window.removesuffix("d").isdigit():
            return f"{name.replace('_', ' ')}s in the last {window.removesuffix('d')} days"
    return feature.replace("_", " ")


def _btyd_text(feature: str, x: float) -> str | None:
    """Plain words for the BTYD model columns the churn model reads."""
    if feature == "btyd_p_alive":
        return f"{x:.0%} chance still active (BG/NBD)"
    if feature == "btyd_p_no_purchase_churn":
        return f"{x:.0%} chance of no purchase within the churn horizon (BG/NBD)"
    if feature in ("btyd_expected_purchases_churn", "btyd_expected_purchases_value"):
        horizon = "churn" if feature.endswith("churn") else "value"
        return f"{x:,.1f} purchases expected within the {horizon} horizon (BG/NBD)"
    if feature == "btyd_expected_spend":
        return f"expected spend {x:,.2f} per purchase (Gamma-Gamma)"
    if feature == "btyd_clv_value":
        return f"BG/NBD and Gamma-Gamma expect {x:,.2f} in value"
    return None


def reason_text(feature: str, row: Mapping[str, Any]) -> str:
    """A short plain-words description of one feature of one customer.

    Parameters
    ----------
    feature : str
        A feature column name.
    row : mapping
        The customer's feature values (``recency_days``, ``gap_mean_days``, ...).

    Returns
    -------
    str
        E.g. ``"no purchase for 94 days, 3.1x the usual gap"``; other features
        read ``"<label> <value>"`` (``"plan is basic"``).
    """
    value = row.get(feature)
    x = _num(value)
    gap = _num(row.get("gap_mean_days"))
    recency = _num(row.get("recency_days"))
    if (text := value_text(feature, x)) is not None:
        return text
    if feature in ("recency_days", "overdue_ratio") and recency is not None:
        text = f"no purchase for {_days(recency)}"
        if gap and gap > 0:
            text += f", {recency / gap:.1f}x the usual gap"
        return text
    if feature == "tenure_days" and x is not None:
        return f"first purchase {_days(x)} ago"
    if feature == "frequency" and x is not None:
        return f"{x:,.0f} repeat purchase day" + ("" if x == 1 else "s")
    if feature == "n_purchases" and x is not None:
        return f"{x:,.0f} purchases in total"
    if feature == "monetary_total" and x is not None:
        return f"spent {x:,.2f} in total"
    if feature == "monetary_mean" and x is not None:
        return f"spends {x:,.2f} per purchase day"
    if feature in ("gap_mean_days", "gap_std_days"):
        if x is None:
            return "only one purchase day so far"
        what = "usual gap" if feature == "gap_mean_days" else "gap varies by"
        return f"{what} {x:,.1f} days between purchases"
    if feature in ("returns_count", "returns_total") and x is not None:
        n, total = _num(row.get("returns_count")) or 0, _num(row.get("returns_total")) or 0
        return f"{n:,.0f} returns worth {total:,.2f}"
    for w in (7, 30, 90, 365):
        if feature == f"tx_count_{w}d" and x is not None:
            return f"{x:,.0f} purchases in the last {w} days"
        if feature == f"spend_{w}d" and x is not None:
            return f"spent {x:,.2f} in the last {w} days"
        if feature == f"active_days_{w}d" and x is not None:
            return f"bought on {x:,.0f} days in the last {w} days"
    if feature == "spend_prior_90d" and x is not None:
        return f"spent {x:,.2f} in the 90 days before the last 90"
    if feature in ("spend_trend_90d", "events_trend_90d") and x is not None:
        what = "spend" if feature.startswith("spend") else "activity"
        if x == 0:
            return f"{what} flat over the last 90 days vs the 90 before"
        way = "up" if x > 0 else "down"
        return f"{what} {way} (trend {x:+.2f}) over the last 90 days vs the 90 before"
    if feature.startswith("days_since_"):
        what = feature.removeprefix("days_since_").replace("_", " ")
        if what == "event":
            what = "activity"
        if x is None:
            return f"no {what} on record" if what != "signup" else "signup date unknown"
        if what == "signup":
            return f"signed up {_days(x)} ago"
        return f"last {what} {_days(x)} ago"
    if feature.startswith("ev_") and feature[-1] == "d" and x is not None:
        name, _, window = feature.removeprefix("ev_").rpartition("_")
        label = name.replace("_", " ")
        return (
            f"{x:,.0f} {label}{'' if x == 1 else 's'} in the last {window.removesuffix('d')} days"
        )
    if feature.startswith("btyd_") and x is not None:
        btyd = _btyd_text(feature, x)
        if btyd is not None:
            return btyd
    if feature in ("events_30d", "events_90d") and x is not None:
        return f"{x:,.0f} engagement events in the last {feature[7:-1]} days"
    if feature.startswith("event_active_days_") and x is not None:
        return f"active on {x:,.0f} days in the last {feature[18:-1]} days"
    label = feature_label(feature)
    if x is None and value is not None and not (isinstance(value, float) and math.isnan(value)):
        return f"{label} is {value}"
    if x is None:
        return f"{label} unknown"
    return f"{label} {x:,.4g}"


def reasons(
    features: pd.DataFrame | Mapping[str, Any],
    contributions: pd.DataFrame | np.ndarray,
    k: int = 3,
    *,
    columns: Sequence[str] | None = None,
) -> list[list[dict[str, Any]]]:
    """The top ``k`` churn-model contributions of each row, largest magnitude first.

    Parameters
    ----------
    features : pandas.DataFrame or mapping of str to array
        Feature rows (the model's input), as a frame or as column arrays.
    contributions : pandas.DataFrame or numpy.ndarray
        ``BoosterModel.contributions`` of the same rows (raw-score scale; > 0
        raises the churn probability), or its array (``contribution_matrix``).
    k : int
        Reasons per row.
    columns : sequence of str, optional
        The feature of each column of an array ``contributions``.

    Returns
    -------
    list of list of dict
        Per row: ``{"feature", "label", "value", "direction", "contribution",
        "text"}`` objects (see the module doc).

    Examples
    --------
    >>> import numpy as np
    >>> from churnclv._reasons import reasons
    >>> rows = {"recency_days": np.array([212.0]), "gap_mean_days": np.array([70.0]),
    ...         "frequency": np.array([4.0])}
    >>> why = reasons(rows, np.array([[1.2, -0.4]]), k=2, columns=["recency_days", "frequency"])
    >>> [(r["label"], r["direction"]) for r in why[0]]
    [('days since last purchase', 'raises'), ('repeat purchase days', 'lowers')]
    >>> why[0][0]["text"]
    'no purchase for 212 days, 3.0x the usual gap: raises churn risk'
    """
    if isinstance(contributions, pd.DataFrame):
        contrib = contributions.to_numpy(dtype=float)
        cols = list(contributions.columns)
    elif columns is None:
        raise ValueError("reasons: pass columns= with an array of contributions")
    else:
        contrib, cols = np.asarray(contributions, dtype=float), list(columns)
    top = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
    context = ["recency_days", "gap_mean_days", "returns_count", "returns_total"]
    used = [cols[j] for j in np.unique(top)]
    needed = [c for c in dict.fromkeys([*used, *context]) if c in features]
    if isinstance(features, pd.DataFrame):
        records = features[needed].to_dict("records")
    else:  # plain Python values, as to_dict gives
        values = [features[c].tolist() for c in needed]
        records = [dict(zip(needed, row, strict=True)) for row in zip(*values, strict=True)]
    out: list[list[dict[str, Any]]] = []
    for i, row in enumerate(records):
        items = []
        for j in top[i]:
            feat = cols[j]
            raw = row.get(feat)
            val: Any = _num(raw)
            if val is None and raw is not None and not isinstance(raw, float):
                val = None if pd.isna(raw) else str(raw)
            contribution = float(contrib[i, j])
            direction = "raises" if contribution > 0 else "lowers"
            items.append(
                {
                    "feature": feat,
                    "label": feature_label(feat),
                    "value": val,
                    "direction": direction,
                    "contribution": contribution,
                    "text": f"{reason_text(feat, row)}: {direction} churn risk",
                }
            )
        out.append(items)
    return out
