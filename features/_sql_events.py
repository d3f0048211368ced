"""The event-value part of the feature SQL: per valued event type, its values as of a cutoff.

Events may carry a numeric ``value`` (a survey score, session minutes, an NPS
answer). For every *valued* event type ``t`` (frozen with the model, see
:func:`churnclv.features.select_event_types`) the vector gets, from the
events of that type with a non-null value and ``ts < cutoff``:

* ``ev_{t}_value_last``: the value of the latest such event (the largest
  value when several share that time);
* ``ev_{t}_value_mean_{w}d`` for ``w`` in 30, 90 and 365: the mean value of
  the events in ``[cutoff - w days, cutoff)`` (null when there is none);
* ``ev_{t}_value_trend``: ``ev_{t}_value_last - ev_{t}_value_mean_365d``,
  how the latest answer compares with the year's mean (negative: falling;
  null without an answer in the last 365 days);
* ``ev_{t}_value_days_since``: days from the latest such event to the cutoff.

The text is rendered for every dialect of :mod:`churnclv.features._dialect`
(DuckDB, SQLite, Spark) and reads the ``cut`` CTE of the main query: valued
events are joined to every later cutoff directly (they are few next to
transactions), whatever form the rest of the query takes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from churnclv.features._dialect import Dialect

__all__ = [
    "DEFAULT_EVENT_TYPES",
    "VALUE_WINDOWS",
    "is_value_feature",
    "value_columns",
    "value_ctes",
    "value_feature_names",
    "with_values",
]

#: The event types of a model trained before event types were chosen from the data.
DEFAULT_EVENT_TYPES: tuple[str, ...] = (
    "login",
    "session",
    "page_view",
    "email_open",
    "support_ticket",
    "complaint",
)

#: Windows (days) of the mean values.
VALUE_WINDOWS: tuple[int, ...] = (30, 90, 365)
_DAY = 86400.0


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def value_feature_names(event_type: str) -> list[str]:
    """The value feature columns of one valued event type, in frame order.

    Examples
    --------
    >>> value_feature_names("nps")  # doctest: +NORMALIZE_WHITESPACE
    ['ev_nps_value_last', 'ev_nps_value_mean_30d', 'ev_nps_value_mean_90d',
     'ev_nps_value_mean_365d', 'ev_nps_value_trend', 'ev_nps_value_days_since']
    """
    p = f"ev_{event_type}_value"
    return [
        f"{p}_last",
        *(f"{p}_mean_{w}d" for w in VALUE_WINDOWS),
        f"{p}_trend",
        f"{p}_days_since",
    ]


_VALUE_FEATURE = re.compile(r"ev_\w+_value_(last|mean_\d+d|trend|days_since)")


def is_value_feature(column: str) -> bool:
    """Whether ``column`` is an event-value feature.

    A frame without such a column reads it as null for every row: exactly the
    value of a customer without valued events of that type, so feature rows
    built without event values (or without events) still score.

    Examples
    --------
    >>> is_value_feature("ev_nps_value_mean_90d"), is_value_feature("ev_nps_30d")
    (True, False)
    """
    return _VALUE_FEATURE.fullmatch(column) is not None


def value_ctes(d: Dialect, valued_types: Sequence[str]) -> str:
    """``vagg``: one row per customer and cutoff with valued events before it (``,`` first)."""
    if not valued_types:
        return ""
    parts = ["j.customer_id", "j.cutoff"]
    for et in valued_types:
        lit, p = _lit(et), f"ev_{et}_value"
        of = f"j.event_type = {lit}"
        parts.append(f"max(j.value) FILTER (WHERE {of} AND j.es = l.last_es) AS {p}_last")
        for w in VALUE_WINDOWS:
            parts.append(
                f"avg(j.value) FILTER (WHERE {of} AND j.es >= j.ce - {w * _DAY}) AS {p}_mean_{w}d"
            )
        parts.append(f"(j.ce - max(j.es) FILTER (WHERE {of})) / {_DAY} AS {p}_days_since")
    types = ", ".join(_lit(t) for t in valued_types)
    sep = ",\n        "
    return f""",
evv AS (
    SELECT customer_id, {d.epoch("ts")} AS es, event_type, CAST(value AS DOUBLE) AS value
    FROM events WHERE value IS NOT NULL AND event_type IN ({types})
),
evj AS (
    SELECT v.customer_id, c.cutoff, c.ce, v.es, v.event_type, v.value
    FROM evv v JOIN cut c ON v.es < c.ce
),
evl AS (
    SELECT customer_id, cutoff, event_type, max(es) AS last_es
    FROM evj GROUP BY customer_id, cutoff, event_type
),
vagg AS (
    SELECT
        {sep.join(parts)}
    FROM evj j JOIN evl l
      ON l.customer_id = j.customer_id AND l.cutoff = j.cutoff AND l.event_type = j.event_type
    GROUP BY j.customer_id, j.cutoff, j.ce
)"""


def value_columns(valued_types: Sequence[str]) -> tuple[list[str], str]:
    """The select expressions of the value features (relation ``vg``) and the join of ``vagg``."""
    if not valued_types:
        return [], ""
    cols = []
    for et in valued_types:
        p = f"vg.ev_{et}_value"
        names = value_feature_names(et)
        cols += [f"{p}_last AS {names[0]}"]
        cols += [f"{p}_mean_{w}d AS {n}" for w, n in zip(VALUE_WINDOWS, names[1:4], strict=True)]
        cols += [f"{p}_last - {p}_mean_365d AS {names[4]}", f"{p}_days_since AS {names[5]}"]
    join = "LEFT JOIN vagg vg ON vg.customer_id = a.customer_id AND vg.cutoff = a.cutoff"
    return cols, join


def with_values(
    d: Dialect, valued_types: Sequence[str], ctes: str, cols: list[str], join: str
) -> tuple[str, list[str], str]:
    """The event CTEs, select expressions and joins of the main query plus the value parts."""
    more, on = value_columns(valued_types)
    return ctes + value_ctes(d, valued_types), [*cols, *more], f"{join}\n{on}" if on else join
