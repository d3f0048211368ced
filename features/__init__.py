"""Point-in-time features and labels (DESIGN §4, §5).

One definition (:mod:`churnclv.features._sql`) computes the feature vector of
every customer as of each cutoff from rows with ``ts < cutoff`` only; training
stacks many cutoffs in one pass, scoring and the service use one. The same
text runs on DuckDB (embedded default), Apache Spark (``engine="spark"``) or,
for small inputs such as the service's batches, SQLite (``engine="sqlite"``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import duckdb
import numpy as np
import pandas as pd

from churnclv._errors import InputError
from churnclv.features._sql import (
    DEFAULT_EVENT_TYPES,
    EVENT_BUCKET_BOUNDS,
    TX_BUCKET_BOUNDS,
    WINDOWS,
    feature_sql,
    label_sql,
    rfm_sql,
)

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
    "rfm_summary",
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


_DATABASE: list[duckdb.DuckDBPyConnection] = []
_DATABASE_LOCK = threading.Lock()
#: Worst-case bytes of rfm_summary's per-group purchase-day bitmaps (else count DISTINCT).
_DAY_BITMAP_BUDGET = 1 << 30


def _connect() -> duckdb.DuckDBPyConnection:
    """A new connection (close it) to this process's in-memory DuckDB database.

    The database is opened on first use and shared: opening one costs about
    12 ms, a connection to it well under 1 ms. Relations registered on a
    connection are visible to that connection only.
    """
    with _DATABASE_LOCK:
        if not _DATABASE:
            _DATABASE.append(duckdb.connect())
        con = _DATABASE[0].cursor()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _cutoff_frame(cutoffs: Sequence[pd.Timestamp | str] | pd.Timestamp | str) -> pd.DataFrame:
    if isinstance(cutoffs, str | pd.Timestamp):
        cutoffs = [cutoffs]
    values = pd.to_datetime(pd.Series(list(cutoffs))).astype("datetime64[us]")
    if values.empty:
        raise ValueError("at least one cutoff is required")
    return pd.DataFrame({"cutoff": values.drop_duplicates().sort_values().to_numpy()})


def _bucket_maps(cut: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The ``tx_buckets`` and ``ev_buckets`` relations of the bucketed form.

    Empty (use the direct form) unless there are several cutoffs, all at
    midnight UTC: then every window start is a day boundary, and each day
    maps to the start day ``lo`` of the bucket it falls in.
    """
    values = cut["cutoff"]
    if len(values) < 2 or bool((values != values.dt.normalize()).any()):
        return {}
    cdays = ((values - pd.Timestamp("1970-01-01")) // pd.Timedelta(days=1)).to_numpy("int64")
    return {
        "tx_buckets": _bucket_map(cdays, TX_BUCKET_BOUNDS),
        "ev_buckets": _bucket_map(cdays, EVENT_BUCKET_BOUNDS),
    }


def _bucket_map(cutoff_days: np.ndarray, bounds: Sequence[int]) -> pd.DataFrame:
    starts = np.unique(np.subtract.outer(cutoff_days, np.asarray(bounds, dtype="int64")))
    days = np.arange(starts[0], cutoff_days.max(), dtype="int64")
    lo = starts[np.searchsorted(starts, days, side="right") - 1]
    return pd.DataFrame({"day": days, "lo": lo})


#: An input relation: a frame, or the path of a Parquet file in the canonical schema.
Input: TypeAlias = pd.DataFrame | str | os.PathLike[str]


@dataclass(frozen=True)
class _Parquet:
    """A Parquet file DuckDB scans itself (the rows never become a pandas frame)."""

    path: str
    columns: tuple[str, ...]

    def sql(self) -> str:
        cols = ", ".join('"' + c.replace('"', '""') + '"' for c in self.columns)
        return f"SELECT {cols} FROM read_parquet('{self.path.replace(chr(39), chr(39) * 2)}')"


def _parquet_columns(path: str | os.PathLike[str], what: str) -> list[str]:
    """The column names of a Parquet input, or an InputError naming the file."""
    src = os.fspath(path)
    if not os.path.isfile(src):
        raise InputError(f"{what}: no such file {src}")
    try:
        import pyarrow.parquet as pq

        return list(pq.read_schema(src).names)
    except Exception as exc:
        raise InputError(f"{what}: {src} is not a readable Parquet file ({exc})") from None


def _frame(value: Input | None, what: str) -> pd.DataFrame | None:
    """A path input read into pandas (for the engines that need frames)."""
    if value is None or isinstance(value, pd.DataFrame):
        return value
    _parquet_columns(value, what)
    return pd.read_parquet(os.fspath(value))


def build_features(
    transactions: Input,
    events: Input | None = None,
    customers: Input | None = None,
    *,
    as_of: Sequence[pd.Timestamp | str] | pd.Timestamp | str,
    event_types: Sequence[str] = DEFAULT_EVENT_TYPES,
    engine: str = "duckdb",
) -> pd.DataFrame:
    """Compute the feature frame of every customer as of one or more cutoffs.

    Parameters
    ----------
    transactions : pandas.DataFrame or path
        ``customer_id``, ``ts``, ``amount`` (negative = return). Each input may
        also be the path of a Parquet file with these columns: DuckDB then
        scans it directly, so the rows never sit in pandas (the lowest peak
        memory; ``benchmarks/features.py`` measures both).
    events : pandas.DataFrame or path, optional
        ``customer_id``, ``ts``, ``event_type``.
    customers : pandas.DataFrame or path, optional
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
    if engine != "duckdb":
        transactions = _frame(transactions, "transactions")
        events = _frame(events, "events")
        customers = _frame(customers, "customers")
    cut = _cutoff_frame(as_of)
    frames, static, with_signup = _inputs(transactions, events, customers, cut)
    sql = _feature_query(frames, static, with_signup, event_types, engine)
    if engine == "spark":
        from churnclv.features._spark import to_pandas

        out = to_pandas(_spark_query(frames, sql))
    elif engine == "sqlite":
        out = _sqlite_query(frames, sql, static, event_types, with_signup)
    else:
        out = _duckdb_query(frames, sql)
    return finish_features(out, static)


def _feature_query(
    frames: dict[str, Any],
    static: list[str],
    with_signup: bool,
    event_types: Sequence[str],
    dialect: str,
) -> str:
    """The feature SQL for ``frames``; adds the bucket maps to ``frames`` when the bucketed
    form applies (several midnight cutoffs, not SQLite)."""
    buckets = _bucket_maps(frames["cutoffs"]) if dialect != "sqlite" else {}
    frames.update(buckets)
    return feature_sql(
        with_events="events" in frames,
        event_types=event_types,
        static_columns=static,
        with_signup=with_signup,
        dialect=dialect,
        bucketed=bool(buckets),
    )


def _relation(value: Input, columns: Sequence[str] | None, what: str) -> Any:
    """A frame (its ``columns``) or a :class:`_Parquet` scan of a path input."""
    if isinstance(value, pd.DataFrame):
        return value if columns is None else value[list(columns)]
    names = _parquet_columns(value, what)
    wanted = names if columns is None else list(columns)
    missing = [c for c in wanted if c not in names]
    if missing:
        raise InputError(f"{what}: {os.fspath(value)} lacks columns {', '.join(missing)}")
    return _Parquet(os.fspath(value), tuple(wanted))


def rfm_summary(
    transactions: Input,
    *,
    observation_period_end: Sequence[pd.Timestamp | str] | pd.Timestamp | str,
) -> pd.DataFrame:
    """The RFM subset of the feature vector, as of one or more cutoffs (DuckDB).

    The columns equal those of :func:`build_features` (``recency_days``,
    ``tenure_days``, ``frequency`` in repeat purchase days, ``n_purchases``,
    ``monetary_total``, ``monetary_mean``) without computing the rest: the
    input of BG/NBD and Gamma-Gamma, in the style of ``rfm_summary`` of
    lifetimes and PyMC-Marketing. Only rows with ``ts < observation_period_end``
    are read.

    Parameters
    ----------
    transactions : pandas.DataFrame or path
        ``customer_id``, ``ts``, ``amount`` (or a Parquet file of them).
    observation_period_end : timestamp or sequence of timestamps
        The cutoff(s).
    """
    cut = _cutoff_frame(observation_period_end)
    frames, _, _ = _inputs(transactions, None, None, cut)
    one = cut["cutoff"].iloc[0] if len(cut) == 1 else None
    if one is not None:
        del frames["cutoffs"]  # the one cutoff is a literal in the SQL
    sql = rfm_sql(day_span=_day_span(frames["transactions"], len(cut)), cutoff=one)
    out = _duckdb_query(frames, sql)
    out["as_of"] = out["as_of"].astype("datetime64[us]")
    return out


_UNITS_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def _day_span(relation: Any, n_cutoffs: int) -> tuple[int, int] | None:
    """First and last day number of the transactions, when day bitmaps fit the budget.

    The bound is the worst case, every row its own customer: ``span / 8``
    bytes per group, ``rows x cutoffs`` groups.
    """
    if isinstance(relation, pd.DataFrame):
        n_rows = len(relation)
        ts = relation["ts"]
        unit = np.datetime_data(ts.dtype)[0] if isinstance(ts.dtype, np.dtype) else None
        if n_rows and ts.dtype.kind == "M" and unit in _UNITS_PER_DAY:
            # integer min/max of the raw values: ~10x pandas' datetime min/max here
            raw, per_day = ts.to_numpy().view("i8"), _UNITS_PER_DAY[unit]
            first, last = int(raw.min()), int(raw.max())
            if first != np.iinfo(np.int64).min:  # the smallest int64 is NaT
                return _bitmap_fits(first // per_day, last // per_day, n_rows, n_cutoffs)
        first, last = ts.min(), ts.max()  # pandas skips missing values
    else:
        con = _connect()
        try:
            row = con.execute(
                f"SELECT min(ts), max(ts), count(*) FROM ({relation.sql()})"
            ).fetchone()
            first, last, n_rows = row if row is not None else (None, None, 0)
        finally:
            con.close()
    if n_rows == 0 or pd.isna(first) or pd.isna(last):
        return None
    epoch, day = pd.Timestamp("1970-01-01"), pd.Timedelta(days=1)
    lo, hi = (pd.Timestamp(first) - epoch) // day, (pd.Timestamp(last) - epoch) // day
    return _bitmap_fits(int(lo), int(hi), n_rows, n_cutoffs)


def _bitmap_fits(lo: int, hi: int, n_rows: int, n_cutoffs: int) -> tuple[int, int] | None:
    """``(lo, hi)`` when day bitmaps of that span fit the budget in the worst case."""
    if ((hi - lo + 1) // 8 + 16) * n_rows * n_cutoffs > _DAY_BITMAP_BUDGET:
        return None
    return lo, hi


def _inputs(
    transactions: Input,
    events: Input | None,
    customers: Input | None,
    cut: pd.DataFrame,
) -> tuple[dict[str, Any], list[str], bool]:
    """The relations the feature SQL reads, the static columns and whether signup_ts exists."""
    frames: dict[str, Any] = {
        "transactions": _relation(transactions, ["customer_id", "ts", "amount"], "transactions"),
        "cutoffs": cut,
    }
    static: list[str] = []
    with_signup = False
    if customers is not None:
        frames["customers"] = _relation(customers, None, "customers")
        names = list(frames["customers"].columns)  # a frame's or the Parquet scan's
        with_signup = "signup_ts" in names
        static = [c for c in names if c not in ("customer_id", "signup_ts")]
    if events is not None:
        frames["events"] = _relation(events, ["customer_id", "ts", "event_type"], "events")
    return frames, static, with_signup


def _duckdb_query(frames: dict[str, Any], sql: str) -> pd.DataFrame:
    con = _connect()
    try:
        for name, frame in frames.items():
            if isinstance(frame, _Parquet):
                con.execute(f"CREATE TEMP VIEW {name} AS {frame.sql()}")
            else:
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
    transactions = _frame(transactions, "transactions")
    events, customers = _frame(events, "events"), _frame(customers, "customers")
    frames, static, with_signup = _inputs(transactions, events, customers, cut)
    sql = _feature_query(frames, static, with_signup, event_types, "spark")
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
