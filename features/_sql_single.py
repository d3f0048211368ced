"""The one-cutoff form of the transaction part of the feature SQL.

:func:`churnclv.features._sql.feature_sql` renders this form when there is
exactly one cutoff (batch scoring, the service, a single training cutoff).
It computes the same columns as the direct form in one hash aggregate per
customer instead of three (purchase days, their gaps, the row aggregates):

* the rows before the cutoff are partitioned by customer (purchases apart
  from other rows) and ordered by day once; ``lag`` of the purchase day then
  marks the first purchase of each purchase day, and ``day - lag(day)`` is
  the gap to the previous purchase day (0 within a day);
* a purchase day counts once, on its first purchase (``frequency``,
  ``monetary_mean``). A window ``[c - w, c)`` starts inside one day ``D``:
  the purchase days after ``D`` are all in it, ``D`` is when it has a
  purchase at or after ``c - w``, the days before are not; that is
  ``active_days_{w}d``;
* the gap sums are sums over the positive gaps, which are exactly the gaps
  between consecutive purchase days.

Only the rows before the cutoff enter the window. The text is in the common subset of
the dialects (window functions with ``PARTITION BY`` on an expression).
"""

from __future__ import annotations

from datetime import datetime

from churnclv.features._dialect import Dialect
from churnclv.features._sql import _DAY as DAY
from churnclv.features._sql import WINDOWS
from churnclv.features._sql import _day as day_of
from churnclv.features._sql import _tx_aggregates as tx_aggregates

__all__ = ["single_tx_ctes"]

#: A purchase row (the window partitions purchases apart from returns).
_BUY = "t.amount > 0"


def single_tx_ctes(d: Dialect, cutoff: datetime) -> str:
    """``agg``: the row aggregates and the purchase-day columns, one row per customer.

    ``cutoff`` is the one cutoff, written into the text as a literal: rows
    are filtered by a constant (pushed into a Parquet scan) and grouped by
    customer alone, and every window bound is a constant. Besides the columns
    of ``_tx_aggregates`` of :mod:`churnclv.features._sql`, ``agg`` has
    ``n_days``, ``active_days_{w}d``, ``gap_sum``, ``gap_sq`` and ``gap_n``
    (the columns of the direct form's ``gaps``).
    """
    stamp = f"TIMESTAMP '{cutoff.strftime('%Y-%m-%d %H:%M:%S.%f')}'"
    ce = d.epoch(stamp)
    part = f"PARTITION BY t.customer_id, {_BUY} ORDER BY t.day"
    first_of_day = f"{_BUY} AND (t.gap IS NULL OR t.gap > 0)"
    active = []
    for w in WINDOWS:
        start = f"{ce} - {w * DAY}"
        boundary = f"floor(({start}) / {DAY})"  # the day the window starts in
        active.append(
            f"count(*) FILTER (WHERE {first_of_day} AND t.day > {boundary})"
            f" + max(CASE WHEN {_BUY} AND t.day = {boundary} AND t.es >= {start}"
            f" THEN 1 ELSE 0 END) AS active_days_{w}d"
        )
    gap = f"{_BUY} AND t.gap > 0"
    sep = ",\n        "
    aggregates = tx_aggregates().replace("c.cutoff", f"{stamp} AS cutoff")
    aggregates = aggregates.replace("c.ce", ce).replace(f"{ce},", f"{ce} AS ce,", 1)
    return f"""tw AS (
    SELECT t.customer_id, t.es, t.amount, t.day, t.day - lag(t.day) OVER ({part}) AS gap
    FROM (
        SELECT customer_id, {d.epoch("ts")} AS es, amount, {day_of(d, "ts")} AS day
        FROM transactions WHERE ts < {stamp}
    ) t
),
agg AS (
    SELECT
        {aggregates},
        count(*) FILTER (WHERE {first_of_day}) AS n_days,
        {sep.join(active)},
        sum(t.gap) FILTER (WHERE {gap}) AS gap_sum,
        sum(t.gap * t.gap) FILTER (WHERE {gap}) AS gap_sq,
        count(*) FILTER (WHERE {gap}) AS gap_n
    FROM tw t
    GROUP BY t.customer_id
    HAVING count(*) FILTER (WHERE {_BUY}) > 0
)"""
