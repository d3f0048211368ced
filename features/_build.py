"""The feature, label and RFM builders behind :mod:`churnclv.features`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churnclv._errors import InputError
from churnclv.features import _engines
from churnclv.features._engines import duckdb_query, spark_query, sqlite_query
from churnclv.features._inputs import (
    Input,
    as_frame,
    breadth_of,
    bucket_maps,
    cutoff_frame,
    decode_customer_ids,
    encode_customer_ids,
    input_relations,
)
from churnclv.features._rfm_arrays import rfm_frame
from churnclv.features._sql import DEFAULT_EVENT_TYPES, feature_sql, label_sql, rfm_sql
from churnclv.features._vocabulary import split_vocabulary, with_value_column

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame

__all__ = [
    "ENGINES",
    "NON_FEATURE_COLUMNS",
    "build_features",
    "build_labels",
    "feature_query",
    "finish_features",
    "rfm_summary",
    "spark_features",
    "table_features",
]

ENGINES = ("duckdb", "spark", "sqlite")


NON_FEATURE_COLUMNS = ("customer_id", "as_of")

_RFM_INPUTS = {"customer_id", "ts", "amount"}


def build_features(
    transactions: Input,
    events: Input | None = None,
    customers: Input | None = None,
    *,
    as_of: Sequence[pd.Timestamp | str] | pd.Timestamp | str,
    event_types: Sequence[str] = DEFAULT_EVENT_TYPES,
    engine: str = "duckdb",
    valued_event_types: Sequence[str] = (),
) -> pd.DataFrame:
    """Compute the feature frame of every customer as of one or more cutoffs.

    Parameters
    ----------
    transactions : pandas.DataFrame or path
        ``customer_id``, ``ts``, ``amount`` (negative = return), optional
        ``category`` and ``channel`` (breadth features: ``n_categories``,
        ``top_category_share``, ``n_channels``, ``top_channel_share``). Each input may
        also be the path of a Parquet file with these columns, or a validated
        input file (a :class:`~churnclv.Scan` from :func:`~churnclv.scan_inputs`):
        DuckDB then scans it directly, so the rows never sit in pandas (the
        lowest peak memory; ``benchmarks/features.py`` measures both).
    events : pandas.DataFrame or path, optional
        ``customer_id``, ``ts``, ``event_type``.
    customers : pandas.DataFrame or path, optional
        ``customer_id``, optional ``signup_ts`` and static attributes.
    as_of : timestamp or sequence of timestamps
        The cutoff(s). Only rows with ``ts < as_of`` are used.
    event_types : sequence of str
        Event types with their own columns (others count only in the totals).
    engine : {"duckdb", "spark", "sqlite"}
        The engine that runs the definition: embedded DuckDB, Apache Spark
        (``CHURNCLV_SPARK_MASTER``, default ``local[2]``; needs pyspark and
        Java 17+), or SQLite (no planner on the hot path: fastest for a few
        thousand rows, slow beyond).
    valued_event_types : sequence of str
        Event types whose numeric ``value`` (an events column) gets value
        features: last value, mean over 30/90/365 days, trend and days since
        (:mod:`churnclv.features._sql_events`); a missing ``value`` column
        counts as all null.

    Returns
    -------
    pandas.DataFrame
        One row per customer with a purchase before the cutoff, per cutoff;
        ``customer_id``, ``as_of`` and the feature columns, sorted by
        ``as_of`` then ``customer_id``; every engine gives the same frame.

    Raises
    ------
    InputError
        For an unknown engine, or ``"spark"`` without pyspark or Java 17+.

    See Also
    --------
    rfm_summary : The RFM columns alone.
    build_labels : Churn and future-value labels of the same rows.

    Notes
    -----
    R, F and M *scores* (1-5) are not features: they rank a customer against
    a population, and decisions rank against the training reference
    (:func:`churnclv.decisions.rfm_scores`).

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv.features import build_features
    >>> tx = pd.DataFrame({
    ...     "customer_id": ["a", "a", "b"],
    ...     "ts": pd.to_datetime(["2024-01-05", "2024-02-10", "2024-02-20"]),
    ...     "amount": [30.0, 20.0, 15.0],
    ... })
    >>> features = build_features(tx, as_of="2024-03-01")
    >>> print(features[["customer_id", "recency_days", "frequency", "monetary_total"]])
      customer_id  recency_days  frequency  monetary_total
    0           a          20.0          1            50.0
    1           b          10.0          0            15.0
    """
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; available: {', '.join(ENGINES)}")
    if engine != "duckdb":
        transactions = as_frame(transactions, "transactions")
        events = as_frame(events, "events")
        customers = as_frame(customers, "customers")
    cut = cutoff_frame(as_of)
    events = with_value_column(events, valued_event_types)
    frames, static, with_signup = input_relations(transactions, events, customers, cut)
    vocab = (event_types, valued_event_types)
    sql = feature_query(frames, static, with_signup, vocab, engine)
    if engine == "spark":
        from churnclv.features._spark import to_pandas

        out = to_pandas(spark_query(frames, sql))
    elif engine == "sqlite":
        out = sqlite_query(frames, sql, static, vocab, with_signup)
    else:
        ids = encode_customer_ids(frames)
        out = decode_customer_ids(duckdb_query(frames, sql), ids)
    return finish_features(out, static)


def table_features(
    tables: Any,
    *,
    as_of: Sequence[pd.Timestamp | str] | pd.Timestamp | str,
    vocabulary: tuple[Sequence[str], Sequence[str]],
    engine: str = "duckdb",
) -> pd.DataFrame:
    """:func:`build_features` of the tables of ``tables`` (:class:`~churnclv.InputTables` or
    :class:`~churnclv.InputScans`) with ``vocabulary`` (event types, valued event types), e.g.
    a champion's (:func:`~churnclv.features.model_vocabulary`)."""
    types, valued = vocabulary
    return build_features(
        tables.transactions,
        tables.events,
        tables.customers,
        as_of=as_of,
        engine=engine,
        event_types=types,
        valued_event_types=valued,
    )


def feature_query(
    frames: dict[str, Any],
    static: list[str],
    with_signup: bool,
    event_types: Sequence[str] | tuple[Sequence[str], Sequence[str]],
    dialect: str,
) -> str:
    """The feature SQL for ``frames``; adds the bucket maps to ``frames`` when the bucketed
    form applies (several midnight cutoffs, not SQLite). One cutoff on DuckDB or Spark takes the
    one-cutoff form (one sort and one aggregate of the rows). ``event_types`` is the
    event types, or the pair (event types, valued event types)."""
    types, valued = split_vocabulary(event_types)
    buckets = bucket_maps(frames["cutoffs"]) if dialect != "sqlite" else {}
    cut = frames["cutoffs"]["cutoff"]
    one_cutoff = cut.iloc[0].to_pydatetime() if len(cut) == 1 else None
    frames.update(buckets)
    return feature_sql(
        with_events="events" in frames,
        event_types=types,
        valued_event_types=valued,
        static_columns=static,
        with_signup=with_signup,
        dialect=dialect,
        bucketed=bool(buckets),
        cutoff=one_cutoff if dialect != "sqlite" and one_cutoff is not None else None,
        breadth=breadth_of(frames),
    )


def rfm_summary(
    transactions: Input,
    *,
    observation_period_end: Sequence[pd.Timestamp | str] | pd.Timestamp | str,
) -> pd.DataFrame:
    """The RFM subset of the feature vector, as of one or more cutoffs.

    The columns equal those of :func:`build_features` (``recency_days``,
    ``tenure_days``, ``frequency`` in repeat purchase days, ``n_purchases``,
    ``monetary_total``, ``monetary_mean``) without computing the rest: the
    input of BG/NBD and Gamma-Gamma, in the style of ``rfm_summary`` of
    lifetimes and PyMC-Marketing. Only rows with ``ts < observation_period_end``
    are read. A pandas frame in the canonical dtypes (string or integer ids,
    ``datetime64[us]`` times, float amounts, no missing values) is aggregated
    on arrays, one pass over the ids (none when the rows are sorted by id and
    time); Parquet paths and other frames run the RFM SQL on DuckDB. Both give
    the same values.

    Parameters
    ----------
    transactions : pandas.DataFrame or path
        ``customer_id``, ``ts``, ``amount`` (or a Parquet file of them).
    observation_period_end : timestamp or sequence of timestamps
        The cutoff(s).

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, ``as_of`` and the six RFM columns, one row per
        customer with a purchase before the cutoff, per cutoff.

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv.features import rfm_summary
    >>> days = pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-21", "2024-02-01"])
    >>> tx = pd.DataFrame({"customer_id": ["x", "x", "x", "y"], "ts": days})
    >>> tx["amount"] = [10.0, 5.0, 30.0, 8.0]
    >>> rfm = rfm_summary(tx, observation_period_end="2024-02-11")
    >>> print(rfm[["customer_id", "tenure_days", "frequency", "n_purchases", "monetary_mean"]])
      customer_id  tenure_days  frequency  n_purchases  monetary_mean
    0           x         41.0          1            3           22.5
    1           y         10.0          0            1            8.0
    """
    cut = cutoff_frame(observation_period_end)
    if isinstance(transactions, pd.DataFrame) and set(transactions.columns) >= _RFM_INPUTS:
        out = rfm_frame(transactions, cut["cutoff"])
        if out is not None:
            return out
    frames, _, _ = input_relations(transactions, None, None, cut)
    one = cut["cutoff"].iloc[0] if len(cut) == 1 else None
    if one is not None:
        del frames["cutoffs"]  # the one cutoff is a literal in the SQL
    span = _engines.day_span(frames["transactions"], len(cut))
    if span is not None:  # no purchase day after the last cutoff's day is ever set
        last = (cut["cutoff"].iloc[-1] - pd.Timestamp("1970-01-01")) // pd.Timedelta(days=1)
        span = (span[0], max(span[0], min(span[1], int(last))))
    sql = rfm_sql(day_span=span, cutoff=one)
    out = duckdb_query(frames, sql, arrow=True)  # no NULL in the RFM columns
    out["as_of"] = out["as_of"].astype("datetime64[us]")
    return out


def finish_features(out: pd.DataFrame, static: Sequence[str]) -> pd.DataFrame:
    """Give a collected feature frame the engine-independent dtypes.

    ``as_of`` becomes ``datetime64[us]``, string static attributes
    ``category``; both engines' results pass through here.
    """
    if out["as_of"].dtype != "datetime64[us]":
        out["as_of"] = out["as_of"].astype("datetime64[us]")
    for col in static:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = _as_category(out[col])
    return out


def _as_category(values: pd.Series) -> pd.Series:
    """``values.astype("category")``, built directly for small columns (about 5x faster:
    the service's one-customer batches); tested equal, dtype included."""
    items = values.tolist() if len(values) <= 1000 else None
    if items is None or any(not isinstance(v, str) and not pd.isna(v) for v in items):
        return values.astype("category")
    cats = sorted({v for v in items if isinstance(v, str)})
    position = {v: i for i, v in enumerate(cats)}
    codes = np.array([position.get(v, -1) if isinstance(v, str) else -1 for v in items])
    index = pd.Index(cats, dtype=values.dtype if isinstance(values.dtype, pd.StringDtype) else None)
    return pd.Series(
        pd.Categorical.from_codes(codes, categories=index), index=values.index, name=values.name
    )


def spark_features(
    transactions: pd.DataFrame,
    events: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
    *,
    as_of: Sequence[pd.Timestamp | str] | pd.Timestamp | str,
    event_types: Sequence[str] = DEFAULT_EVENT_TYPES,
    valued_event_types: Sequence[str] = (),
) -> tuple[SparkDataFrame, list[str]]:
    """The feature frame as a lazy Spark DataFrame (for work that stays on Spark).

    Same arguments as :func:`build_features`. Returns the Spark DataFrame and
    the static attribute columns (pass both to :func:`finish_features` once
    collected).

    Raises
    ------
    InputError
        When pyspark or Java 17+ is missing.
    """
    cut = cutoff_frame(as_of)
    transactions = as_frame(transactions, "transactions")
    events, customers = as_frame(events, "events"), as_frame(customers, "customers")
    events = with_value_column(events, valued_event_types)
    frames, static, with_signup = input_relations(transactions, events, customers, cut)
    vocab = (event_types, valued_event_types)
    sql = feature_query(frames, static, with_signup, vocab, "spark")
    return spark_query(frames, sql), static


def build_labels(
    transactions: pd.DataFrame,
    keys: pd.DataFrame,
    *,
    churn_horizon_days: float = 90,
    value_horizon_days: float = 365,
    engine: str = "duckdb",
) -> pd.DataFrame:
    """Labels for the (customer_id, as_of) rows of ``keys``.

    ``churned`` is True when the customer makes no purchase in
    ``(as_of, as_of + churn_horizon_days]``; ``future_value`` is the net sum of
    amount in ``(as_of, as_of + value_horizon_days]``. Rows at or before
    ``as_of`` are never read.

    Parameters
    ----------
    transactions : pandas.DataFrame
        ``customer_id``, ``ts``, ``amount``, including rows after the cutoffs.
    keys : pandas.DataFrame
        ``customer_id`` and ``as_of`` of the rows to label (e.g. a feature frame).
    churn_horizon_days, value_horizon_days : float
        The label windows after ``as_of``, in days (positive).
    engine : {"duckdb", "spark"}
        The engine that runs the label SQL.

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, ``as_of``, ``churned`` (bool) and ``future_value``.

    Raises
    ------
    InputError
        For an unknown engine or a horizon that is not positive.

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv.features import build_labels
    >>> rows = [("a", "2024-01-05", 30.0), ("a", "2024-04-01", 25.0), ("b", "2024-02-20", 15.0)]
    >>> tx = pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])
    >>> tx["ts"] = pd.to_datetime(tx["ts"])
    >>> keys = pd.DataFrame({"customer_id": ["a", "b"], "as_of": pd.Timestamp("2024-03-01")})
    >>> print(build_labels(tx, keys, churn_horizon_days=90, value_horizon_days=365))
      customer_id      as_of  churned  future_value
    0           a 2024-03-01    False          25.0
    1           b 2024-03-01     True           0.0
    """
    if engine not in ("duckdb", "spark"):
        raise InputError(f"unknown label engine {engine!r}; available: duckdb, spark")
    if churn_horizon_days <= 0 or value_horizon_days <= 0:
        raise InputError("horizons must be positive numbers of days")
    frames = {
        "transactions": transactions[["customer_id", "ts", "amount"]],
        "keys": keys[["customer_id", "as_of"]],
    }
    sql = label_sql(churn_horizon_days, value_horizon_days, dialect=engine)
    if engine == "spark":
        from churnclv.features._spark import to_pandas

        out = to_pandas(spark_query(frames, sql))
    else:
        out = duckdb_query(frames, sql)
    out["as_of"] = out["as_of"].astype("datetime64[us]")
    out["churned"] = out["churned"].astype(bool)
    return out
