"""Plain words for the event-value features (:mod:`churnclv.features._sql_events`).

``ev_<type>_value_last``, ``_mean_<w>d``, ``_trend`` and ``_days_since`` read as
"last nps value 3", "mean nps value 6.5 over the last 90 days", ... in reasons.
"""

from __future__ import annotations

__all__ = ["value_label", "value_text"]

_KINDS = ("last", "mean_30d", "mean_90d", "mean_365d", "trend", "days_since")


def _split(feature: str) -> tuple[str, str] | None:
    """``(event type in words, kind)`` of a value feature, else None."""
    if not feature.startswith("ev_") or "_value_" not in feature:
        return None
    name, _, kind = feature.removeprefix("ev_").rpartition("_value_")
    return (name.replace("_", " "), kind) if kind in _KINDS and name else None


def value_label(feature: str) -> str | None:
    """A value feature's name in words (None for other features).

    Examples
    --------
    >>> value_label("ev_nps_value_mean_90d"), value_label("ev_login_30d")
    ('mean nps value over 90 days', None)
    """
    parts = _split(feature)
    if parts is None:
        return None
    name, kind = parts
    if kind.startswith("mean_"):
        return f"mean {name} value over {kind[5:-1]} days"
    return {
        "last": f"last {name} value",
        "trend": f"last {name} value vs its 365-day mean",
        "days_since": f"days since last {name} value",
    }[kind]


def value_text(feature: str, x: float | None) -> str | None:
    """One customer's value feature in words (None for other features).

    Examples
    --------
    >>> value_text("ev_nps_value_last", 3.0), value_text("ev_nps_value_trend", -2.5)
    ('last nps value 3', 'last nps value 2.5 below its 365-day mean')
    >>> value_text("ev_nps_value_mean_30d", None)
    'no nps value in the last 30 days'
    """
    parts = _split(feature)
    if parts is None:
        return None
    name, kind = parts
    if kind.startswith("mean_"):
        days = kind[5:-1]
        if x is None:
            return f"no {name} value in the last {days} days"
        return f"mean {name} value {x:,.3g} over the last {days} days"
    if x is None:
        return f"no {name} value on record" if kind != "trend" else f"no recent {name} value"
    if kind == "last":
        return f"last {name} value {x:,.4g}"
    if kind == "days_since":
        return f"last {name} value {x:,.0f} days ago"
    way = "above" if x > 0 else "below"
    return (
        f"last {name} value {abs(x):,.3g} {way} its 365-day mean"
        if x
        else (f"last {name} value at its 365-day mean")
    )
