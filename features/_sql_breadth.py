"""Purchase breadth and channel mix: the SQL of the category and channel features.

When the transactions carry a ``category`` and/or ``channel`` column,
:func:`churnclv.features._sql.feature_sql` adds, per customer and cutoff, over
every purchase (``amount > 0``) with ``ts < cutoff`` (the whole history before
the cutoff, as ``monetary_total``) whose value is not null:

- ``n_categories``: distinct categories bought;
- ``top_category_share``: share of that spend in the customer's top category
  (spend per category over spend on categorised purchases);
- ``n_channels``: distinct channels used;
- ``top_channel_share``: share of purchases (rows) made in the most-used
  channel.

A customer without a categorised (or channelled) purchase gets nulls. The
text runs unchanged on DuckDB, SQLite and Spark: the direct form joins rows
to cutoffs (``es < ce``), the bucketed form (several midnight cutoffs) first
sums each (customer, value, bucket) and joins the buckets (``lo < cday``).
"""

from __future__ import annotations

from collections.abc import Sequence

from churnclv.features._dialect import Dialect

__all__ = [
    "BREADTH_COLUMNS",
    "BREADTH_INPUTS",
    "breadth_columns",
    "breadth_ctes",
    "breadth_inputs",
    "breadth_joins",
]

#: The optional transactions columns with breadth features, in this order.
BREADTH_INPUTS: tuple[str, ...] = ("category", "channel")
#: The feature columns of each input column.
BREADTH_COLUMNS: dict[str, tuple[str, str]] = {
    "category": ("n_categories", "top_category_share"),
    "channel": ("n_channels", "top_channel_share"),
}
_ANCIENT = "coalesce(b.lo, -1000000000)"


def breadth_inputs(features: Sequence[str]) -> tuple[str, ...]:
    """The breadth inputs (``category``, ``channel``) whose columns are among ``features``."""
    return tuple(k for k in BREADTH_INPUTS if any(c in features for c in BREADTH_COLUMNS[k]))


def _check(kinds: Sequence[str]) -> None:
    unknown = [k for k in kinds if k not in BREADTH_INPUTS]
    if unknown:
        raise ValueError(f"unknown breadth columns {unknown}; known: {list(BREADTH_INPUTS)}")


def breadth_ctes(d: Dialect, kinds: Sequence[str], *, bucketed: bool) -> str:
    """The CTEs (each led by ``,``) giving ``<kind>_agg(customer_id, cutoff, ...)``."""
    _check(kinds)
    out = []
    for kind in kinds:
        col = f"t.{d.ident(kind)}"
        if bucketed:
            sums = f""",
{kind}_b AS (
    SELECT t.customer_id, {col} AS k, {_ANCIENT} AS lo,
           sum(t.amount) AS spend, count(*) AS n
    FROM tx t LEFT JOIN tx_buckets b ON b.day = t.day
    WHERE t.day < (SELECT max(cday) FROM cut) AND t.amount > 0 AND {col} IS NOT NULL
    GROUP BY t.customer_id, {col}, {_ANCIENT}
),
{kind}_s AS (
    SELECT s.customer_id, c.cutoff, s.k, sum(s.spend) AS spend, sum(s.n) AS n
    FROM {kind}_b s JOIN cut c ON s.lo < c.cday
    GROUP BY s.customer_id, c.cutoff, s.k
)"""
        else:
            sums = f""",
{kind}_s AS (
    SELECT t.customer_id, c.cutoff, {col} AS k, sum(t.amount) AS spend, count(*) AS n
    FROM tx t JOIN cut c ON t.es < c.ce
    WHERE t.amount > 0 AND {col} IS NOT NULL
    GROUP BY t.customer_id, c.cutoff, {col}
)"""
        n_col, share_col = BREADTH_COLUMNS[kind]
        share = "max(spend) / sum(spend)" if kind == "category" else "max(n) / sum(n)"
        out.append(
            f"""{sums},
{kind}_agg AS (
    SELECT customer_id, cutoff, CAST(count(*) AS DOUBLE) AS {n_col},
           CAST({share.split(" / ")[0]} AS DOUBLE) / CAST({share.split(" / ")[1]} AS DOUBLE)
               AS {share_col}
    FROM {kind}_s GROUP BY customer_id, cutoff
)"""
        )
    return "".join(out)


def breadth_columns(kinds: Sequence[str]) -> str:
    """The select-list entries (each led by ``,``) of the base feature select."""
    cols = []
    for kind in kinds:
        n_col, share_col = BREADTH_COLUMNS[kind]
        cols += [f"{kind}_agg.{n_col}", f"{kind}_agg.{share_col}"]
    return "".join(f",\n    {c}" for c in cols)


def breadth_joins(kinds: Sequence[str]) -> str:
    """The LEFT JOINs of the ``<kind>_agg`` CTEs onto the ``agg a`` relation."""
    return "".join(
        f"\nLEFT JOIN {k}_agg ON {k}_agg.customer_id = a.customer_id AND {k}_agg.cutoff = a.cutoff"
        for k in kinds
    )
