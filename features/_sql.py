"""The one SQL definition of the feature vector and the labels.

Every query runs against ``transactions(customer_id, ts, amount[, category,
channel])`` (breadth in :mod:`._sql_breadth`), ``events(customer_id, ts,
event_type)``, ``customers(customer_id, ...)`` and ``cutoffs(cutoff)``: one row
for scoring, many for a training stack (an inequality join, then GROUP BY
customer and cutoff). Time is epoch seconds so the text is portable (timestamp
``delta`` semantics differ between DuckDB and Spark). It is rendered for a
:class:`~churnclv.features._dialect.Dialect` (``"duckdb"``, ``"spark"`` or
``"sqlite"``: epoch seconds, identifier quoting and the two-argument maximum
differ). It is the one definition of the vector (direct, bucketed and, in
:mod:`churnclv.features._sql_single`, one-cutoff forms; RFM subset; labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from churnclv.features._dialect import Dialect, get_dialect
from churnclv.features._sql_events import DEFAULT_EVENT_TYPES, with_values

__all__ = [
    "ANCIENT_BUCKET",
    "DEFAULT_EVENT_TYPES",
    "EVENT_BUCKET_BOUNDS",
    "TX_BUCKET_BOUNDS",
    "WINDOWS",
    "feature_sql",
    "label_sql",
    "rfm_sql",
]

WINDOWS: tuple[int, ...] = (7, 30, 90, 365)
_DAY = 86400.0
#: Days before a cutoff where a transaction window (or the prior-90-day window) starts.
TX_BUCKET_BOUNDS: tuple[int, ...] = (0, *WINDOWS, 180)
#: The same for the event windows (30 and 90 days, prior 90 days).
EVENT_BUCKET_BOUNDS: tuple[int, ...] = (0, 30, 90, 180)
#: Bucket start of the days before every window of every cutoff.
ANCIENT_BUCKET = -1_000_000_000


#: A row's bucket start: its day's from the bucket map, or the ancient bucket.
_BUCKET_LO = f"coalesce(b.lo, {ANCIENT_BUCKET})"


def _day(d: Dialect, ts: str) -> str:
    """The UTC day number (days since 1970-01-01, floored) of the timestamp ``ts``."""
    return f"CAST(floor({d.epoch(ts)} / {_DAY}) AS BIGINT)"


def _cutoff_and_tx_ctes(d: Dialect, *, bucketed: bool = False, extra: Sequence[str] = ()) -> str:
    """The ``cut`` and ``tx`` CTEs every query starts with (epoch seconds, purchase day).

    ``bucketed`` adds ``cday``, the cutoff's day number (cutoffs at midnight UTC); ``extra``
    names more ``transactions`` columns ``tx`` keeps."""
    cday = f", {_day(d, 'cutoff')} AS cday" if bucketed else ""
    more = "".join(f", {d.ident(c)}" for c in extra)
    return f"""WITH cut AS (SELECT cutoff, {d.epoch("cutoff")} AS ce{cday} FROM cutoffs),
tx AS (
    SELECT customer_id, {d.epoch("ts")} AS es, amount, {_day(d, "ts")} AS day{more}
    FROM transactions
),"""


def _rfm_columns(ce: str, first: str, last: str, n_days: str) -> str:
    """The RFM columns of the vector, defined once for :func:`feature_sql` and :func:`rfm_sql`.

    ``ce``, ``first`` and ``last`` are the epoch seconds of the cutoff and of
    the first and last purchase, ``n_days`` the purchase days; the aggregate
    relation is ``a`` (``n_purchases``, ``monetary_total``).
    """
    return ",\n    ".join(
        [
            f"({ce} - {last}) / {_DAY} AS recency_days",
            f"({ce} - {first}) / {_DAY} AS tenure_days",
            f"{n_days} - 1 AS frequency",
            "a.n_purchases",
            "a.monetary_total",
            f"a.monetary_total / {n_days} AS monetary_mean",
        ]
    )


def _active_days() -> str:
    return ",\n           ".join(
        f"count(*) FILTER (WHERE p.last_es >= c.ce - {w * _DAY}) AS active_days_{w}d"
        for w in WINDOWS
    )


def _tx_aggregates() -> str:
    win = []
    for w in WINDOWS:
        since = f"t.es >= c.ce - {w * _DAY}"
        win += [
            f"count(*) FILTER (WHERE t.amount > 0 AND {since}) AS tx_count_{w}d",
            f"coalesce(sum(t.amount) FILTER (WHERE {since}), 0.0) AS spend_{w}d",
        ]
    prior = f"t.es >= c.ce - {180 * _DAY} AND t.es < c.ce - {90 * _DAY}"
    return ",\n        ".join(
        [
            "t.customer_id",
            "c.cutoff",
            "c.ce",
            "min(t.es) FILTER (WHERE t.amount > 0) AS first_es",
            "max(t.es) FILTER (WHERE t.amount > 0) AS last_es",
            "count(*) FILTER (WHERE t.amount > 0) AS n_purchases",
            "sum(t.amount) AS monetary_total",
            "count(*) FILTER (WHERE t.amount < 0) AS returns_count",
            "coalesce(-sum(t.amount) FILTER (WHERE t.amount < 0), 0.0) AS returns_total",
            *win,
            f"coalesce(sum(t.amount) FILTER (WHERE {prior}), 0.0) AS spend_prior_90d",
        ]
    )


def _event_aggregates(event_types: Sequence[str]) -> str:
    parts = ["e.customer_id", "c.cutoff"]
    for et in event_types:
        lit = "'" + et.replace("'", "''") + "'"
        for w in (30, 90):
            parts.append(
                f"count(*) FILTER (WHERE e.event_type = {lit} AND e.es >= c.ce - {w * _DAY})"
                f" AS ev_{et}_{w}d"
            )
        parts.append(
            f"(c.ce - max(e.es) FILTER (WHERE e.event_type = {lit})) / {_DAY} AS days_since_{et}"
        )
    parts += [
        f"count(*) FILTER (WHERE e.es >= c.ce - {30 * _DAY}) AS events_30d",
        f"count(*) FILTER (WHERE e.es >= c.ce - {90 * _DAY}) AS events_90d",
        f"count(*) FILTER (WHERE e.es >= c.ce - {180 * _DAY} AND e.es < c.ce - {90 * _DAY})"
        " AS events_prior_90d",
        f"(c.ce - max(e.es)) / {_DAY} AS days_since_event",
    ]
    return ",\n        ".join(parts)


_PDAY = """pday AS (
    SELECT customer_id, day, first_es, last_es,
           (day - lag(day) OVER (PARTITION BY customer_id ORDER BY day)) AS gap
    FROM (SELECT customer_id, day, min(es) AS first_es, max(es) AS last_es FROM tx
          WHERE amount > 0 GROUP BY customer_id, day)
),"""


def _direct_tx_ctes() -> str:
    """``gaps`` and ``agg``: every row joined to every later cutoff (any cutoff time)."""
    return f"""{_PDAY}
-- Purchase days as of each cutoff. A day counts when its first purchase is before the cutoff;
-- it has a purchase in [c - w, c) exactly when its last purchase is at or after c - w (a
-- window of 7+ days cannot fall inside one calendar day), so windowed distinct-day counts
-- are plain filtered counts here instead of count(DISTINCT ...) over every row.
gaps AS (
    SELECT p.customer_id, c.cutoff,
           count(*) AS n_days,
           {_active_days()},
           sum(p.gap) AS gap_sum, sum(p.gap * p.gap) AS gap_sq, count(p.gap) AS gap_n
    FROM pday p JOIN cut c ON p.first_es < c.ce
    GROUP BY p.customer_id, c.cutoff
),
agg AS (
    SELECT
        {_tx_aggregates()}
    FROM tx t JOIN cut c ON t.es < c.ce
    GROUP BY t.customer_id, c.cutoff, c.ce
    HAVING count(*) FILTER (WHERE t.amount > 0) > 0
)"""


def _in_bucket(alias: str, relation: str, bucket_map: str) -> str:
    """``FROM relation alias`` with each row's bucket start ``lo`` (its day's, or ancient)."""
    return (
        f"FROM {relation} {alias} LEFT JOIN {bucket_map} b ON b.day = {alias}.day\n"
        f"    WHERE {alias}.day < (SELECT max(cday) FROM cut)\n"
        f"    GROUP BY {alias}.customer_id, {_BUCKET_LO}"
    )


def _since(lo: str, days: int) -> str:
    return f"{lo} >= c.cday - {days}"


def _bucketed_tx_ctes() -> str:
    """``gaps`` and ``agg`` from per-(customer, bucket) partial aggregates.

    For cutoffs at midnight UTC. ``tx_buckets(day, lo)`` maps each day to the
    start day of its bucket: the days between consecutive window starts
    (``cday - w`` for every cutoff and every ``w`` in :data:`TX_BUCKET_BOUNDS`)
    share one, days before all of them form the ancient bucket. Every window
    of every cutoff is then a union of whole buckets, so each row is
    aggregated once into its bucket and only the small bucket table is joined
    to the cutoffs, instead of every row to every later cutoff.
    """
    lo = f"{_BUCKET_LO} AS lo"
    win, act = [], []
    for w in WINDOWS:
        win += [
            f"CAST(coalesce(sum(t.n_pos) FILTER (WHERE {_since('t.lo', w)}), 0) AS BIGINT)"
            f" AS tx_count_{w}d",
            f"coalesce(sum(t.amount) FILTER (WHERE {_since('t.lo', w)}), 0.0) AS spend_{w}d",
        ]
        act.append(
            f"CAST(coalesce(sum(p.n_days) FILTER (WHERE {_since('p.lo', w)}), 0) AS BIGINT)"
            f" AS active_days_{w}d"
        )
    win.append(
        "coalesce(sum(t.amount) FILTER (WHERE t.lo >= c.cday - 180 AND t.lo < c.cday - 90),"
        " 0.0) AS spend_prior_90d"
    )
    sep = ",\n           "
    return f"""{_PDAY}
pb AS (
    SELECT p.customer_id, {lo}, count(*) AS n_days,
           sum(p.gap) AS gap_sum, sum(p.gap * p.gap) AS gap_sq, count(p.gap) AS gap_n
    {_in_bucket("p", "pday", "tx_buckets")}
),
gaps AS (
    SELECT p.customer_id, c.cutoff,
           CAST(sum(p.n_days) AS BIGINT) AS n_days,
           {sep.join(act)},
           sum(p.gap_sum) AS gap_sum, sum(p.gap_sq) AS gap_sq,
           CAST(sum(p.gap_n) AS BIGINT) AS gap_n
    FROM pb p JOIN cut c ON p.lo < c.cday
    GROUP BY p.customer_id, c.cutoff
),
tb AS (
    SELECT t.customer_id, {lo},
           min(t.es) FILTER (WHERE t.amount > 0) AS first_es,
           max(t.es) FILTER (WHERE t.amount > 0) AS last_es,
           count(*) FILTER (WHERE t.amount > 0) AS n_pos,
           sum(t.amount) AS amount,
           count(*) FILTER (WHERE t.amount < 0) AS n_neg,
           sum(t.amount) FILTER (WHERE t.amount < 0) AS amount_neg
    {_in_bucket("t", "tx", "tx_buckets")}
),
agg AS (
    SELECT t.customer_id, c.cutoff, c.ce,
           min(t.first_es) AS first_es,
           max(t.last_es) AS last_es,
           CAST(sum(t.n_pos) AS BIGINT) AS n_purchases,
           sum(t.amount) AS monetary_total,
           CAST(sum(t.n_neg) AS BIGINT) AS returns_count,
           coalesce(-sum(t.amount_neg), 0.0) AS returns_total,
           {sep.join(win)}
    FROM tb t JOIN cut c ON t.lo < c.cday
    GROUP BY t.customer_id, c.cutoff, c.ce
    HAVING sum(t.n_pos) > 0
)"""


def _ev_cte(d: Dialect) -> str:
    return f""",
ev AS (
    SELECT customer_id, {d.epoch("ts")} AS es, event_type, {_day(d, "ts")} AS day
    FROM events
),"""


def _direct_event_ctes(d: Dialect, event_types: Sequence[str]) -> str:
    """``eagg`` and ``edays``: every event joined to every later cutoff (any cutoff time).
    Event days start 90 days before the first cutoff: no window of any cutoff sees older ones."""
    return f"""{_ev_cte(d)}
eagg AS (
    SELECT
        {_event_aggregates(event_types)}
    FROM ev e JOIN cut c ON e.es < c.ce
    GROUP BY e.customer_id, c.cutoff, c.ce
),
eday AS (
    SELECT customer_id, day, min(es) AS first_es, max(es) AS last_es
    FROM ev WHERE es >= (SELECT min(ce) FROM cut) - {90 * _DAY}
    GROUP BY customer_id, day
),
edays AS (
    SELECT d.customer_id, c.cutoff,
           count(*) FILTER (WHERE d.last_es >= c.ce - {30 * _DAY}) AS event_active_days_30d,
           count(*) FILTER (WHERE d.last_es >= c.ce - {90 * _DAY}) AS event_active_days_90d
    FROM eday d JOIN cut c ON d.first_es < c.ce
    GROUP BY d.customer_id, c.cutoff
)"""


def _bucketed_event_ctes(d: Dialect, event_types: Sequence[str]) -> str:
    """``eagg`` and ``edays`` from per-(customer, bucket) partial aggregates.

    As :func:`_bucketed_tx_ctes`, with ``ev_buckets`` built from
    :data:`EVENT_BUCKET_BOUNDS`; the first pass already splits counts and
    last times by event type (one column each), so the bucket table has one
    row per customer and bucket. Event days are counted only where a 30- or
    90-day window can see them (from 90 days before the first cutoff).
    """
    first: list[str] = []
    parts: list[str] = []
    for i, et in enumerate(event_types):
        lit = "'" + et.replace("'", "''") + "'"
        first += [
            f"count(*) FILTER (WHERE e.event_type = {lit}) AS n_{i}",
            f"max(e.es) FILTER (WHERE e.event_type = {lit}) AS last_{i}",
        ]
        for w in (30, 90):
            parts.append(
                f"CAST(coalesce(sum(e.n_{i}) FILTER (WHERE {_since('e.lo', w)}), 0) AS BIGINT)"
                f" AS ev_{et}_{w}d"
            )
        parts.append(f"(c.ce - max(e.last_{i})) / {_DAY} AS days_since_{et}")

    def n_since(days: int, cond: str = "") -> str:
        return f"CAST(coalesce(sum(e.n) FILTER (WHERE {cond}{_since('e.lo', days)}), 0) AS BIGINT)"

    parts += [
        f"{n_since(30)} AS events_30d",
        f"{n_since(90)} AS events_90d",
        f"{n_since(180, 'e.lo < c.cday - 90 AND ')} AS events_prior_90d",
        f"(c.ce - max(e.last_es)) / {_DAY} AS days_since_event",
    ]
    lo = f"{_BUCKET_LO} AS lo"
    sep = ",\n           "
    return f"""{_ev_cte(d)}
eb AS (
    SELECT e.customer_id, {lo}, count(*) AS n, max(e.es) AS last_es,
           {sep.join(first)}
    {_in_bucket("e", "ev", "ev_buckets")}
),
eagg AS (
    SELECT e.customer_id, c.cutoff,
           {sep.join(parts)}
    FROM eb e JOIN cut c ON e.lo < c.cday
    GROUP BY e.customer_id, c.cutoff, c.ce
),
eday AS (
    SELECT customer_id, day FROM ev
    WHERE day >= (SELECT min(cday) FROM cut) - 90
    GROUP BY customer_id, day
),
edb AS (
    SELECT d.customer_id, {lo}, count(*) AS n_days
    {_in_bucket("d", "eday", "ev_buckets")}
),
edays AS (
    SELECT d.customer_id, c.cutoff,
           CAST(coalesce(sum(d.n_days) FILTER (WHERE {_since("d.lo", 30)}), 0) AS BIGINT)
               AS event_active_days_30d,
           CAST(coalesce(sum(d.n_days) FILTER (WHERE {_since("d.lo", 90)}), 0) AS BIGINT)
               AS event_active_days_90d
    FROM edb d JOIN cut c ON d.lo < c.cday
    GROUP BY d.customer_id, c.cutoff
)"""


def feature_sql(
    *,
    with_events: bool,
    event_types: Sequence[str] = DEFAULT_EVENT_TYPES,
    valued_event_types: Sequence[str] = (),
    static_columns: Sequence[str] = (),
    with_signup: bool = False,
    dialect: str = "duckdb",
    bucketed: bool = False,
    cutoff: datetime | None = None,
    breadth: Sequence[str] = (),
) -> str:
    """SQL computing one feature row per customer and cutoff.

    Only rows with ``ts < cutoff`` are read. A customer with no purchase
    (amount > 0) before the cutoff has no row.

    Parameters
    ----------
    with_events : bool
        Whether an ``events`` relation exists.
    event_types : sequence of str
        Event types that get their own columns (others still count in totals).
    valued_event_types : sequence of str
        Event types whose ``value`` gets value columns (:mod:`~churnclv.features._sql_events`).
    static_columns : sequence of str
        Columns of ``customers`` passed through as static attributes.
    with_signup : bool
        Whether ``customers`` has ``signup_ts`` (gives ``days_since_signup``).
    dialect : {"duckdb", "spark", "sqlite"}
        The SQL dialect of the returned text.
    bucketed : bool
        Aggregate each row once into its bucket between window starts, then
        join the buckets to the cutoffs (much less work for many cutoffs).
        Needs every cutoff at midnight UTC and the relations
        ``tx_buckets(day, lo)`` and ``ev_buckets(day, lo)`` (see
        :func:`_bucketed_tx_ctes`); gives the same frame as the direct form.
    cutoff : datetime, optional
        The one cutoff (the only row of ``cutoffs``), for the one-cutoff form
        (:mod:`churnclv.features._sql_single`): one sort and one aggregate of
        the rows before it; gives the same frame as the direct form.
    breadth : sequence of {"category", "channel"}
        ``transactions`` columns with breadth features (:mod:`._sql_breadth`).
    """
    from churnclv.features._sql_breadth import breadth_columns, breadth_ctes, breadth_joins
    from churnclv.features._sql_single import single_tx_ctes

    d = get_dialect(dialect)
    for et in (*event_types, *valued_event_types):
        if not et.replace("_", "").isalnum():
            raise ValueError(f"event type {et!r} cannot be a column name")
    ev_cte = ""
    ev_cols = ""
    ev_join = ""
    if with_events:
        ev_cte = (_bucketed_event_ctes if bucketed else _direct_event_ctes)(d, event_types)
        cols = []
        for et in event_types:
            cols += [
                f"coalesce(g.ev_{et}_30d, 0) AS ev_{et}_30d",
                f"coalesce(g.ev_{et}_90d, 0) AS ev_{et}_90d",
                f"g.days_since_{et}",
            ]
        cols += [
            "coalesce(g.events_30d, 0) AS events_30d",
            "coalesce(g.events_90d, 0) AS events_90d",
            "CASE WHEN coalesce(g.events_90d, 0) + coalesce(g.events_prior_90d, 0) = 0 THEN 0.0"
            " ELSE (coalesce(g.events_90d, 0) - coalesce(g.events_prior_90d, 0))"
            " / CAST(coalesce(g.events_90d, 0) + coalesce(g.events_prior_90d, 0) AS DOUBLE)"
            " END AS events_trend_90d",
            "coalesce(ed.event_active_days_30d, 0) AS event_active_days_30d",
            "coalesce(ed.event_active_days_90d, 0) AS event_active_days_90d",
            "g.days_since_event",
        ]
        ev_join = (
            "LEFT JOIN eagg g ON g.customer_id = a.customer_id AND g.cutoff = a.cutoff\n"
            "LEFT JOIN edays ed ON ed.customer_id = a.customer_id AND ed.cutoff = a.cutoff"
        )
        ev_cte, cols, ev_join = with_values(d, valued_event_types, ev_cte, cols, ev_join)
        ev_cols = ",\n    " + ",\n    ".join(cols)
    static_sel = ""
    static_join = ""
    if static_columns or with_signup:
        sel = [f"s.{d.ident(col)}" for col in static_columns]
        if with_signup:
            signup = d.epoch("s.signup_ts")
            sel.append(
                f"CASE WHEN {signup} < a.ce THEN (a.ce - {signup}) / {_DAY}"
                " END AS days_since_signup"
            )
        static_sel = ",\n    " + ",\n    ".join(sel)
        static_join = "LEFT JOIN customers s ON s.customer_id = a.customer_id"
    # Integer operands are cast: SQLite's "/" on two integers truncates.
    gp = "gp" if cutoff is None else "a"  # the one-cutoff ``agg`` has the ``gaps`` columns
    gap_var = f"({gp}.gap_sq - {gp}.gap_sum * {gp}.gap_sum / CAST({gp}.gap_n AS DOUBLE))"
    gap_var += f" / ({gp}.gap_n - 1)"
    win_cols = []
    for w in WINDOWS:
        win_cols += [f"a.tx_count_{w}d", f"a.spend_{w}d", f"{gp}.active_days_{w}d"]
    if cutoff is None:
        tx_ctes = (_bucketed_tx_ctes if bucketed else _direct_tx_ctes)()
    else:
        tx_ctes = single_tx_ctes(d, cutoff)
    gaps_join = "LEFT JOIN gaps gp ON gp.customer_id = a.customer_id AND gp.cutoff = a.cutoff"
    gaps_join = gaps_join if cutoff is None else ""
    return f"""
{_cutoff_and_tx_ctes(d, bucketed=bucketed, extra=breadth)}
{tx_ctes}{ev_cte}{breadth_ctes(d, breadth, bucketed=bucketed)},
base AS (
SELECT
    a.customer_id,
    a.cutoff AS as_of,
    {_rfm_columns("a.ce", "a.first_es", "a.last_es", f"{gp}.n_days")},
    a.returns_count,
    a.returns_total,
    {", ".join(win_cols)},
    a.spend_prior_90d,
    CASE WHEN abs(a.spend_90d) + abs(a.spend_prior_90d) < 1e-6 THEN 0.0
         ELSE (a.spend_90d - a.spend_prior_90d) / (abs(a.spend_90d) + abs(a.spend_prior_90d))
    END AS spend_trend_90d,
    CASE WHEN {gp}.gap_n > 0 THEN {gp}.gap_sum / CAST({gp}.gap_n AS DOUBLE) END AS gap_mean_days,
    CASE WHEN {gp}.gap_n > 1
         THEN sqrt({d.greatest(gap_var, "0.0")})
    END AS gap_std_days{ev_cols}{breadth_columns(breadth)}{static_sel}
FROM agg a
{gaps_join}
{ev_join}{breadth_joins(breadth)}
{static_join}
)
SELECT
    b.*,
    CASE WHEN b.gap_mean_days > 0 THEN b.recency_days / b.gap_mean_days END AS overdue_ratio
FROM base b
ORDER BY b.as_of, b.customer_id
"""


def rfm_sql(
    *,
    dialect: str = "duckdb",
    day_span: tuple[int, int] | None = None,
    cutoff: datetime | None = None,
) -> str:
    """SQL of the RFM subset of :func:`feature_sql`: the same values, nothing else.

    One row per customer with a purchase before the cutoff: ``recency_days``,
    ``tenure_days``, ``frequency`` (repeat purchase days), ``n_purchases``,
    ``monetary_total`` and ``monetary_mean``, computed exactly as in the full
    vector (a purchase day counts when it holds a purchase before the cutoff).

    ``day_span`` (DuckDB only), the first and last day number of any row,
    counts purchase days with a bitmap of that span per group
    (``bitstring_agg``) instead of ``count(DISTINCT day)``'s second hash
    table: about half the time on 1M rows, at ``span / 8`` bytes per group.

    ``cutoff``, the one cutoff as a literal (DuckDB only), replaces the
    ``cutoffs`` relation: rows are filtered by a constant and grouped by
    customer alone instead of being joined to the cutoffs, which saves about
    15% of a 1M-row call (planning included) for the same values (``ts <
    cutoff`` is ``epoch(ts) < epoch(cutoff)``: epoch seconds keep microsecond
    order).
    """
    d = get_dialect(dialect)
    if (day_span is not None or cutoff is not None) and d.name != "duckdb":
        raise ValueError("day_span and a literal cutoff need the duckdb dialect")
    if cutoff is not None:
        # min/max on the timestamps themselves, epoch seconds of the two results only:
        # epoch is monotone, so the values are the same doubles as in the full vector
        stamp = f"TIMESTAMP '{cutoff.strftime('%Y-%m-%d %H:%M:%S.%f')}'"
        head, ce, as_of = "WITH", d.epoch(stamp), stamp
        rows, keys = f"transactions t WHERE t.ts < {stamp}", "t.customer_id"
        when, day = "t.ts", _day(d, "t.ts")
        first, last = d.epoch("a.first_t"), d.epoch("a.last_t")
        order = "a.customer_id"
    else:
        head, ce, as_of = _cutoff_and_tx_ctes(d), "a.ce", "a.cutoff"
        rows, keys = "tx t JOIN cut c ON t.es < c.ce", "t.customer_id, c.cutoff, c.ce"
        when, day = "t.es", "t.day"
        first, last = "a.first_t", "a.last_t"
        order = "as_of, a.customer_id"
    group = ", ".join(k.split(".", 1)[1] for k in keys.split(", "))  # the keys, as r's columns
    if day_span is None:
        n_days = "count(DISTINCT r.p_day)"
    else:
        lo, hi = (int(x) for x in day_span)
        # INTEGER day numbers: a little cheaper to set in the bitmap than BIGINT, same days
        n_days = f"bit_count(bitstring_agg(CAST(r.p_day AS INTEGER), {lo}, {hi}))"
    # A purchase's time and day, NULL on other rows: the aggregates skip NULLs, so
    # min/max/count/days of purchases need no FILTER clause each; ``ts``/``es`` is never
    # NULL here (the cutoff comparison drops NULLs).
    return f"""
{head}
r AS (
    SELECT {keys},
           CASE WHEN t.amount > 0 THEN {when} END AS p_when,
           CASE WHEN t.amount > 0 THEN {day} END AS p_day,
           t.amount
    FROM {rows}
),
agg AS (
    SELECT {group},
           min(r.p_when) AS first_t,
           max(r.p_when) AS last_t,
           {n_days} AS n_days,
           count(r.p_when) AS n_purchases,
           sum(r.amount) AS monetary_total
    FROM r
    GROUP BY {group}
    HAVING count(r.p_when) > 0
)
SELECT a.customer_id, {as_of} AS as_of,
       {_rfm_columns(ce, first, last, "a.n_days")}
FROM agg a
ORDER BY {order}
"""


def label_sql(
    churn_horizon_days: float, value_horizon_days: float, *, dialect: str = "duckdb"
) -> str:
    """SQL computing labels per (customer, cutoff) from rows in (cutoff, cutoff + horizon].

    Expects a ``keys(customer_id, as_of)`` relation: the feature rows to label.
    ``churned`` = no purchase (amount > 0) in the churn window; ``future_value``
    = net sum of amount in the value window. ``dialect`` is ``"duckdb"`` or
    ``"spark"``.
    """
    d = get_dialect(dialect)
    ch = float(churn_horizon_days) * _DAY
    vh = float(value_horizon_days) * _DAY
    longest = max(ch, vh)
    return f"""
WITH k AS (SELECT customer_id, as_of, {d.epoch("as_of")} AS ce FROM keys),
t AS (SELECT customer_id, {d.epoch("ts")} AS es, amount FROM transactions),
hit AS (
    SELECT k.customer_id, k.as_of,
           count(*) FILTER (WHERE t.amount > 0 AND t.es <= k.ce + {ch}) AS purchases_churn_window,
           coalesce(sum(t.amount) FILTER (WHERE t.es <= k.ce + {vh}), 0.0) AS future_value
    FROM k JOIN t ON t.customer_id = k.customer_id AND t.es > k.ce AND t.es <= k.ce + {longest}
    GROUP BY k.customer_id, k.as_of
)
SELECT k.customer_id, k.as_of,
       coalesce(h.purchases_churn_window, 0) = 0 AS churned,
       coalesce(h.future_value, 0.0) AS future_value
FROM k LEFT JOIN hit h ON h.customer_id = k.customer_id AND h.as_of = k.as_of
ORDER BY k.as_of, k.customer_id
"""
