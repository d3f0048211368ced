"""The engines that run the feature SQL: DuckDB (shared in-process database), SQLite, Spark."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd

from churnclv._duckdb import prepare
from churnclv._errors import InputError
from churnclv._io_scan import Scan
from churnclv.features._inputs import Parquet
from churnclv.features._sql import feature_sql

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame

__all__ = [
    "MEMORY_LIMIT_ENV",
    "TEMP_DIRECTORY_ENV",
    "connect",
    "database_config",
    "day_span",
    "duckdb_dtypes",
    "duckdb_query",
    "spark_query",
    "sqlite_query",
]

_DATABASE: list[duckdb.DuckDBPyConnection] = []


_DATABASE_LOCK = threading.Lock()


#: Worst-case bytes of rfm_summary's per-group purchase-day bitmaps (else count DISTINCT).
_DAY_BITMAP_BUDGET = 1 << 30


#: Environment variables overriding the DuckDB memory limit (e.g. ``8GB``) and spill folder.
MEMORY_LIMIT_ENV = "CHURNCLV_DUCKDB_MEMORY_LIMIT"
TEMP_DIRECTORY_ENV = "CHURNCLV_DUCKDB_TEMP_DIR"
#: Share of the machine's physical memory DuckDB may use before it spills to disk.
_MEMORY_SHARE = 0.6


def database_config() -> dict[str, str]:
    """The settings the shared database opens with: memory limit and spill folder.

    ``memory_limit`` is ``CHURNCLV_DUCKDB_MEMORY_LIMIT`` or 60% of the
    machine's physical memory (the rest is left to pandas, the models and
    the inputs held in memory); past it, sorts, aggregates and joins spill to
    ``temp_directory``: ``CHURNCLV_DUCKDB_TEMP_DIR`` or a ``churnclv-duckdb-<pid>``
    folder in the system temporary directory (never the working directory),
    so inputs larger than memory are spilled instead of failing.

    Examples
    --------
    >>> sorted(database_config())
    ['memory_limit', 'temp_directory']
    """
    limit = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if not limit:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            total = 8 * 2**30
        limit = f"{max(1, int(total * _MEMORY_SHARE) // 2**20)}MB"
    temp = os.environ.get(TEMP_DIRECTORY_ENV, "").strip()
    if not temp:
        temp = os.path.join(tempfile.gettempdir(), f"churnclv-duckdb-{os.getpid()}")
    return {"memory_limit": limit, "temp_directory": temp}


def connect() -> duckdb.DuckDBPyConnection:
    """A new connection (close it) to this process's in-memory DuckDB database.

    The database is opened on first use with :func:`database_config` and
    shared: a connection (cursor) to it is much cheaper than opening a
    database. Relations registered on a connection are visible to that
    connection only.
    """
    with _DATABASE_LOCK:
        if not _DATABASE:
            try:
                config: dict[str, str | bool | int | float | list[str]] = {**database_config()}
                _DATABASE.append(duckdb.connect(config=config))
            except duckdb.Error as exc:
                raise InputError(
                    f"cannot open DuckDB with {database_config()} ({exc}); check "
                    f"{MEMORY_LIMIT_ENV} and {TEMP_DIRECTORY_ENV}"
                ) from None
        con = _DATABASE[0].cursor()
    return prepare(con)


def duckdb_query(frames: dict[str, Any], sql: str, *, arrow: bool = False) -> pd.DataFrame:
    """Run ``sql`` over ``frames`` (frames, :class:`Parquet` or :class:`~churnclv.Scan` scans)
    on a new connection.

    ``arrow`` fetches the result through Arrow: about half the conversion
    time of 100k string ids, but integer and boolean columns with NULLs
    become float64 and object instead of the nullable dtypes, so only for
    results without such columns.
    """
    con = connect()
    try:
        for name, frame in frames.items():
            if isinstance(frame, Parquet | Scan):
                con.execute(f"CREATE TEMP VIEW {name} AS {frame.sql()}")
            else:
                con.register(name, frame)
        if arrow:
            return con.sql(sql).to_arrow_table().to_pandas()
        return con.execute(sql).df()
    finally:
        con.close()


def duckdb_dtypes(frames: dict[str, pd.DataFrame], sql: str) -> dict[str, object]:
    """The column dtypes DuckDB gives ``sql`` over ``frames`` (run on their empty slices)."""
    empty = {name: frame.iloc[:0] for name, frame in frames.items() if name != "cutoffs"}
    empty["cutoffs"] = frames["cutoffs"]
    return dict(duckdb_query(empty, sql).dtypes)


def sqlite_query(
    frames: dict[str, pd.DataFrame],
    sql: str,
    static: list[str],
    event_types: Sequence[str] | tuple[Sequence[str], Sequence[str]],
    with_signup: bool,
) -> pd.DataFrame:
    from churnclv.features._inputs import breadth_of
    from churnclv.features._sqlite import SQLiteFeatures
    from churnclv.features._vocabulary import split_vocabulary

    types, valued = split_vocabulary(event_types)
    duck_sql = feature_sql(
        with_events="events" in frames,
        event_types=types,
        valued_event_types=valued,
        static_columns=static,
        with_signup=with_signup,
        breadth=breadth_of(frames),
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


def spark_query(frames: dict[str, pd.DataFrame], sql: str) -> SparkDataFrame:
    from churnclv.features._spark import get_spark, register_inputs

    spark = get_spark()
    register_inputs(spark, frames)
    return spark.sql(sql)


_UNITS_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def day_span(relation: Any, n_cutoffs: int) -> tuple[int, int] | None:
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
        con = connect()
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
