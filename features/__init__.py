"""Point-in-time features and labels (DESIGN §4, §5).

One definition (:mod:`churnclv.features._sql`) computes the feature vector of
every customer as of each cutoff from rows with ``ts < cutoff`` only; training
stacks many cutoffs in one pass, scoring and the service use one. The same
text runs on DuckDB (embedded default), Apache Spark (``engine="spark"``) or,
for small inputs such as the service's batches, SQLite (``engine="sqlite"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from churnclv._errors import InputError
from churnclv.features._sql import DEFAULT_EVENT_TYPES, WINDOWS, feature_sql, label_sql

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame

__all__ = [
    "DEFAULT_EVENT_TYPES",
    "ENGINES",
    "NON_FEATURE_COLUMNS",
    "WINDOWS",
    "build_features",
    "build_labels",
    "finish_features",
    "spark_features",
]

ENGINES = ("duckdb", "spark", "sqlite")
NON_FEATURE_COLUMNS = ("customer_id", "as_of")
_EMPTY_EVENTS = pd.DataFrame(
    {
        "customer_id": pd.Series(dtype="str"),
        "ts": pd.Series(dtype="datetime64[us]"),
        "event_type": pd.Series(dtype="str"),
    }
)


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _cutoff_frame(cutoffs: Sequence[pd.Timestamp | str] | pd.Timestamp | str) -> pd.DataFrame:
    if isinstance(cutoffs, str | pd.Timestamp):
        cutoffs = [cutoffs]
    values = pd.to_datetime(pd.Series(list(cutoffs))).astype("datetime64[us]")
    if values.empty:
        raise ValueError("at least one cutoff is required")
    return pd.DataFrame({"cutoff": values.drop_duplicates().sort_values().to_numpy()})


def build_features(
    transactions: pd.DataFrame,
    events: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
    *,
    as_of: Sequence[pd.Timestamp | str] | pd.Timestamp | str,
    event_types: Sequence[str] = DEFAULT_EVENT_TYPES,
    engine: str = "duckdb",
) -> pd.DataFrame:
    """Compute the feature frame of every customer as of one or more cutoffs.

    Parameters
    ----------
    transactions : pandas.DataFrame
        ``customer_id``, ``ts``, ``amount`` (negative = return).
    events : pandas.DataFrame, optional
        ``customer_id``, ``ts``, ``event_type``.
    customers : pandas.DataFrame, optional
        ``customer_id``, optional ``signup_ts`` and static attributes.
    as_of : timestamp or sequence of timestamps
        The cutoff(s). Only rows with ``ts < as_of`` are used.
    event_types : sequence of str
        Event types with their own columns.
    engine : {"duckdb", "spark", "sqlite"}
        The engine that runs the definition: embedded DuckDB, Apache Spark
        (``CHURNCLV_SPARK_MASTER``, default ``local[2]``; needs pyspark and
        Java 17+), or SQLite (no planner on the hot path: fastest for a few
        thousand rows, slow beyond).

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
    """
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; available: {', '.join(ENGINES)}")
    cut = _cutoff_frame(as_of)
    frames, static, with_signup = _inputs(transactions, events, customers, cut)
    sql = feature_sql(
        with_events="events" in frames,
        event_types=event_types,
        static_columns=static,
        with_signup=with_signup,
        dialect=engine,
    )
    if engine == "spark":
        from churnclv.features._spark import to_pandas

        out = to_pandas(_spark_query(frames, sql))
    elif engine == "sqlite":
        out = _sqlite_query(frames, sql, static, event_types, with_signup)
    else:
        out = _duckdb_query(frames, sql)
    return finish_features(out, static)


def _inputs(
    transactions: pd.DataFrame,
    events: pd.DataFrame | None,
    customers: pd.DataFrame | None,
    cut: pd.DataFrame,
) -> tuple[dict[str, pd.DataFrame], list[str], bool]:
    """The relations the feature SQL reads, the static columns and whether signup_ts exists."""
    frames = {"transactions": transactions[["customer_id", "ts", "amount"]], "cutoffs": cut}
    static: list[str] = []
    with_signup = False
    if customers is not None:
        frames["customers"] = customers
        with_signup = "signup_ts" in customers.columns
        static = [c for c in customers.columns if c not in ("customer_id", "signup_ts")]
    if events is not None:
        frames["events"] = events[["customer_id", "ts", "event_type"]]
    return frames, static, with_signup


def _duckdb_query(frames: dict[str, pd.DataFrame], sql: str) -> pd.DataFrame:
    con = _connect()
    try:
        for name, frame in frames.items():
            con.register(name, frame)
        return con.execute(sql).df()
    finally:
        con.close()


def duckdb_dtypes(frames: dict[str, pd.DataFrame], sql: str) -> dict[str, object]:
    """The column dtypes DuckDB gives ``sql`` over ``frames`` (run on their empty slices)."""
    empty = {name: frame.iloc[:0] for name, frame in frames.items() if name != "cutoffs"}
    empty["cutoffs"] = frames["cutoffs"]
    return dict(_duckdb_query(empty, sql).dtypes)


def _sqlite_query(
    frames: dict[str, pd.DataFrame],
    sql: str,
    static: list[str],
    event_types: Sequence[str],
    with_signup: bool,
) -> pd.DataFrame:
    from churnclv.features._sqlite import SQLiteFeatures

    duck_sql = feature_sql(
        with_events="events" in frames,
        event_types=event_types,
        static_columns=static,
        with_signup=with_signup,
    )
    runner = SQLiteFeatures(sql, static, duckdb_dtypes(frames, duck_sql))
    try:
        return runner.run(
            frames["transactions"],
            frames.get("events"),
            frames.get("customers"),
            list(frames["cutoffs"]["cutoff"]),
        )
    finally:
        runner.close()


def _spark_query(frames: dict[str, pd.DataFrame], sql: str) -> SparkDataFrame:
    from churnclv.features._spark import get_spark, register_inputs

    spark = get_spark()
    register_inputs(spark, frames)
    return spark.sql(sql)


def finish_features(out: pd.DataFrame, static: Sequence[str]) -> pd.DataFrame:
    """Give a collected feature frame the engine-independent dtypes.

    ``as_of`` becomes ``datetime64[us]``, string static attributes
    ``category``; both engines' results pass through here.
    """
    out["as_of"] = out["as_of"].astype("datetime64[us]")
    for col in static:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].astype("category")
    return out


def spark_features(
    transactions: pd.DataFrame,
    events: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
    *,
    as_of: Sequence[pd.Timestamp | str] | pd.Timestamp | str,
    event_types: Sequence[str] = DEFAULT_EVENT_TYPES,
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
    cut = _cutoff_frame(as_of)
    frames, static, with_signup = _inputs(transactions, events, customers, cut)
    sql = feature_sql(
        with_events="events" in frames,
        event_types=event_types,
        static_columns=static,
        with_signup=with_signup,
        dialect="spark",
    )
    return _spark_query(frames, sql), static


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
    ``as_of`` are never read. ``engine`` is ``"duckdb"`` or ``"spark"``.
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

        out = to_pandas(_spark_query(frames, sql))
    else:
        out = _duckdb_query(frames, sql)
    out["as_of"] = out["as_of"].astype("datetime64[us]")
    out["churned"] = out["churned"].astype(bool)
    return out
