"""Input tables read and validated by Spark: Parquet paths -> canonical Spark DataFrames.

The Spark twin of :mod:`churnclv._io` for Parquet inputs. The files (or
folders of Parquet files, or any URI Spark reads) are scanned by
``spark.read.parquet`` on the executors; the columns are mapped by a
:class:`~churnclv.ColumnMap` and validated with Spark expressions: required
columns, parseable timestamps, numeric and finite amounts, non-empty event
types, unique customer ids, and ``as_of`` after the first purchase. Each check
is an aggregate over the table (one pass per table, plus a small job for a
sample of offending values when one fails), so nothing but counts, minima and
those samples reach the driver. The messages are those of the DuckDB loader.

As in :mod:`churnclv._io`, exact duplicate source rows are dropped and rows
without a customer id skipped (transactions and events in one shuffle by
customer, which the per-customer aggregates of the feature SQL then reuse);
the notes count skipped rows, returns and zero amounts on the source rows
(duplicates included: counting the distinct rows would cost another shuffle).

CSV inputs are not read here: :func:`read_inputs` loads them on the driver
through :func:`churnclv.load_inputs` (CSV dialects, encodings and date formats
live there) and hands the frames to Spark.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from churnclv._errors import InputError
from churnclv._io import ColumnMap, LoadReport, check_as_of, load_customers, load_events
from churnclv._io import load_transactions as load_transactions_frame
from churnclv._io_breadth import breadth_sources, empty_note
from churnclv._io_csv import is_csv
from churnclv._io_values import missing_value_column, non_numeric_values
from churnclv.features._vocabulary import DEFAULT_TOP_K, Vocabulary, choose_event_types

if TYPE_CHECKING:
    from pyspark.sql import Column, SparkSession
    from pyspark.sql import DataFrame as SparkDataFrame

__all__ = ["SparkInputs", "read_inputs"]

_SAMPLE = 5
#: Partitions of the rows shuffled by customer per partition of the input scan.
_SPLITS = 8


@dataclass(frozen=True)
class SparkInputs:
    """The canonical input tables as (lazy) Spark DataFrames.

    Attributes
    ----------
    transactions, events, customers : pyspark.sql.DataFrame or None
        ``customer_id``, ``ts``, ``amount``; ``customer_id``, ``ts``,
        ``event_type``; ``customer_id``, optional ``signup_ts`` and static
        attributes.
    source : str
        The transactions path (named in messages).
    first_purchase, first_ts : pandas.Timestamp or None
        The earliest purchase (``amount > 0``) and the earliest row.
    events_source : str or None
        The events path (named in messages).
    """

    transactions: SparkDataFrame
    events: SparkDataFrame | None
    customers: SparkDataFrame | None
    source: str
    first_purchase: pd.Timestamp | None
    first_ts: pd.Timestamp | None
    events_source: str | None = None

    def check_as_of(self, as_of: pd.Timestamp) -> None:
        """:func:`churnclv.check_as_of` on the minima found while validating (no Spark job)."""
        if self.first_purchase is not None:
            probe = pd.DataFrame({"ts": [self.first_purchase], "amount": [1.0]})
        else:
            probe = pd.DataFrame({"ts": [self.first_ts], "amount": [0.0]})
        check_as_of(probe, as_of, source=self.source)

    def select_event_types(
        self, as_of: pd.Timestamp, *, top_k: int = DEFAULT_TOP_K, named: Iterable[str] = ()
    ) -> Vocabulary:
        """:func:`churnclv.features.select_event_types` of the events, counted by Spark.

        One aggregate per event type (rows before ``as_of``, and rows with a
        finite ``value``); only those counts, one row per type, reach the driver.
        """
        from pyspark.sql import functions as F

        if self.events is None:
            return choose_event_types({}, (), top_k=top_k, named=named)
        past = self.events.filter(F.col("ts") < F.lit(as_of.isoformat()).cast("timestamp"))
        aggs = [F.count(F.lit(1)).alias("n")]
        if "value" in past.columns:
            value = F.col("value")
            aggs.append(_count(value.isNotNull() & ~F.isnan(value)).alias("valued"))
        rows = _collect(past.groupBy("event_type").agg(*aggs), "events", str(self.events_source))
        counts = {str(r["event_type"]): int(r["n"]) for r in rows}
        valued = {str(r["event_type"]) for r in rows if r.asDict().get("valued")}
        return choose_event_types(counts, valued, top_k=top_k, named=named)


def _has_scheme(path: str) -> bool:
    return "://" in path


def _read(spark: SparkSession, path: str, what: str) -> SparkDataFrame:
    """``spark.read.parquet(path)``; InputError for a missing or unreadable path."""
    if not _has_scheme(path):
        p = Path(path)
        if not p.exists():
            raise InputError(f"{what} file not found: {p}")
        if p.is_file() and p.stat().st_size == 0:
            raise InputError(f"{what} file is empty: {p}")
    try:
        return spark.read.parquet(path)
    except Exception as exc:  # AnalysisException and friends: one line, no JVM trace
        raise InputError(f"{what} file {path} cannot be read: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _collect(frame: SparkDataFrame, what: str, path: str) -> list[Any]:
    """Collect a small result; a failing scan becomes an InputError naming the file."""
    try:
        return frame.collect()
    except Exception as exc:
        raise InputError(f"{what} file {path} cannot be read: {_first_line(exc)}") from None


def _require(src: SparkDataFrame, needed: dict[str, str], path: str, what: str) -> None:
    cols = src.columns
    for role, name in needed.items():
        if name not in cols:
            avail = ", ".join(cols[:20])
            raise InputError(
                f"{what} file {path}: missing required column {name!r} (for {role}); "
                f"columns found: {avail}"
            )


def _id(src: SparkDataFrame, name: str) -> Column:
    """The customer id as a string: integral floats (spreadsheet ids) without ``.0``."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DecimalType, DoubleType, FloatType

    col = F.col(f"`{name}`")
    if isinstance(src.schema[name].dataType, DoubleType | FloatType | DecimalType):
        return F.when(col == F.floor(col), col.cast("bigint").cast("string")).otherwise(
            col.cast("string")
        )
    return col.cast("string")


def _ts(src: SparkDataFrame, name: str) -> Column:
    """The timestamp column (dates at midnight, strings parsed; numbers are not timestamps)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import NumericType

    col = F.col(f"`{name}`")
    if isinstance(src.schema[name].dataType, NumericType):
        return F.lit(None).cast("timestamp")
    return col.cast("timestamp")


def _number(src: SparkDataFrame, name: str, decimal: str) -> Column:
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    col = F.col(f"`{name}`")
    if decimal == "," and isinstance(src.schema[name].dataType, StringType):
        col = F.regexp_replace(col, ",", ".")
    return col.cast("double")


def _bad_number(value: Column) -> Column:
    from pyspark.sql import functions as F

    return value.isNull() | F.isnan(value) | (F.abs(value) == F.lit(float("inf")))


def _check_rows_and_ts(
    stats: Mapping[str, Any], src: SparkDataFrame, ts_col: str, ts: Column, what: str, path: str
) -> None:
    """InputError for an empty file, or for timestamps that did not parse (``stats``:
    ``rows`` and ``bad_ts`` counts of one pass over ``src``)."""
    if stats["rows"] == 0:
        raise InputError(f"{what} file is empty (no data rows): {path}")
    if stats["bad_ts"]:
        sample = _sample(src, ts_col, ts.isNull(), what, path)
        raise InputError(
            f"{what} file {path}: column {ts_col!r} has unparseable or missing timestamps, "
            f"e.g. {sample}"
        )


def _sample(src: SparkDataFrame, name: str, bad: Column, what: str, path: str) -> str:
    rows = _collect(src.filter(bad).select(f"`{name}`").limit(_SAMPLE), what, path)
    return ", ".join(repr(r[0]) for r in rows)


def _count(condition: Column) -> Column:
    from pyspark.sql import functions as F

    return F.sum(F.when(condition, 1).otherwise(0))


def _transactions(
    spark: SparkSession, path: str, cm: ColumnMap, report: LoadReport
) -> tuple[SparkDataFrame, pd.Timestamp | None, pd.Timestamp | None]:
    from pyspark.sql import functions as F

    what = "transactions"
    src = _read(spark, path, what)
    needed = cm.transaction_columns()
    _require(src, needed, path, what)
    decimal = cm.decimal or "."
    cid, ts = _id(src, cm.customer_col), _ts(src, cm.ts_col)
    numbers = {
        name: _number(src, name, decimal)
        for name in ([cm.quantity_col, cm.price_col] if "quantity" in needed else [cm.amount_col])
        if name and not cm.no_amount
    }
    if cm.no_amount:
        amount = F.lit(1.0)
    elif "quantity" in needed:
        amount = numbers[cm.quantity_col] * numbers[cm.price_col]  # type: ignore[index]
    else:
        amount = numbers[cm.amount_col]
    valid = cid.isNotNull()
    breadth = {}
    for canon, source in breadth_sources(src.columns, cm, path).items():
        text = F.trim(F.col(f"`{source}`").cast("string"))
        breadth[canon] = F.when(text != "", text)
    checks = [
        *(F.count(v).alias(f"known_{k}") for k, v in breadth.items()),
        F.count(F.lit(1)).alias("rows"),
        _count(~valid).alias("no_id"),
        _count(ts.isNull()).alias("bad_ts"),
        *(_count(_bad_number(v)).alias(f"bad_{i}") for i, v in enumerate(numbers.values())),
        F.min(F.when(valid & (amount > 0), ts)).alias("first_purchase"),
        F.min(F.when(valid, ts)).alias("first_ts"),
        _count(valid & (amount < 0)).alias("returns"),
        _count(valid & (amount == 0)).alias("zeros"),
    ]
    stats = _collect(src.agg(*checks), what, path)[0].asDict()
    _check_rows_and_ts(stats, src, cm.ts_col, ts, what, path)
    for i, (name, value) in enumerate(numbers.items()):
        if stats[f"bad_{i}"]:
            sample = _sample(src, name, _bad_number(value), what, path)
            comma = decimal == "." and re.search(r"'-?\d*,\d+'", sample) is not None
            hint = " (decimal commas? use --decimal ,)" if comma else ""
            raise InputError(
                f"{what} file {path}: column {name!r} has non-numeric or missing values, "
                f"e.g. {sample}{hint}"
            )
    if stats["no_id"] == stats["rows"]:
        raise InputError(f"{what} file {path}: no rows with a customer id")
    name = Path(path).name
    if stats["no_id"]:
        report.add(f"{what} {name}: {stats['no_id']:,} rows without a customer id skipped")
    if stats["returns"]:
        report.add(
            f"{what} {name}: {stats['returns']:,} return rows (negative amount, e.g. cancelled "
            "invoices) kept: they reduce monetary totals and net future value"
        )
    if stats["zeros"]:
        report.add(f"{what} {name}: {stats['zeros']:,} zero-amount rows kept (not purchases)")
    for canon in list(breadth):
        if not stats[f"known_{canon}"]:
            report.add(empty_note(name, breadth_sources(src.columns, cm, path)[canon], canon))
            del breadth[canon]
    canonical = [
        cid.alias("customer_id"),
        ts.alias("ts"),
        amount.cast("double").alias("amount"),
        *(v.alias(k) for k, v in breadth.items()),
    ]
    frame = _by_customer(src, valid, canonical)
    return frame, _stamp(stats["first_purchase"]), _stamp(stats["first_ts"])


def _by_customer(src: SparkDataFrame, valid: Column, canonical: list[Column]) -> SparkDataFrame:
    """The canonical rows of ``src``'s distinct valid rows, hash-partitioned by customer.

    One shuffle of the rows by customer id, and the exact duplicate source
    rows (every source column compared, as the DuckDB loader does) dropped
    within each partition after it: no map-side hash table of every row, and
    the rows already sit where every per-customer aggregate, window and join
    of the feature SQL needs them, so those run without another shuffle.
    There are :data:`_SPLITS` partitions per partition of the file scan
    (``spark.sql.files.maxPartitionBytes`` of input, 128 MiB by default), at
    least ``spark.sql.shuffle.partitions``: each task's deduplication and
    per-customer sort then fit a small executor's memory instead of spilling.
    """
    from pyspark.sql import functions as F

    key = "__churnclv_customer"
    rows = src.filter(valid).withColumn(key, canonical[0])
    n = int(src.sparkSession.conf.get("spark.sql.shuffle.partitions") or 1)
    with contextlib.suppress(Exception):  # no RDD API (Spark Connect): shuffle partitions
        n = max(n, _SPLITS * src.rdd.getNumPartitions())
    deduplicated = rows.repartition(n, F.col(key)).dropDuplicates()
    return deduplicated.select(F.col(key).alias("customer_id"), *canonical[1:])


def _stamp(value: Any) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value)


def _events(spark: SparkSession, path: str, cm: ColumnMap) -> SparkDataFrame:
    from pyspark.sql import functions as F

    what = "events"
    src = _read(spark, path, what)
    needed = {"customer_id": cm.customer_col, "ts": cm.ts_col, "event_type": cm.event_type_col}
    _require(src, needed, path, what)
    cid, ts = _id(src, cm.customer_col), _ts(src, cm.ts_col)
    etype = F.trim(F.col(f"`{cm.event_type_col}`").cast("string"))
    empty = etype.isNull() | (etype == "")
    value_col = cm.event_value_col or ("value" if "value" in src.columns else None)
    if value_col is not None and value_col not in src.columns:
        raise missing_value_column(path, value_col, src.columns)
    value, bad_value = _event_value(value_col, cm.decimal or ".")
    stats = _collect(
        src.agg(
            F.count(F.lit(1)).alias("rows"),
            _count(ts.isNull()).alias("bad_ts"),
            _count(empty).alias("empty"),
            _count(bad_value).alias("bad_value"),
        ),
        what,
        path,
    )[0]
    _check_rows_and_ts(stats, src, cm.ts_col, ts, what, path)
    if stats["empty"]:
        raise InputError(f"{what} file {path}: column {cm.event_type_col!r} has empty values")
    if stats["bad_value"]:
        bad = src.filter(bad_value).select(f"`{value_col}`").distinct().limit(_SAMPLE)
        sample = [r[0] for r in _collect(bad, what, path)]
        raise non_numeric_values(path, str(value_col), sample, cm.decimal or ".")
    canonical = [
        cid.alias("customer_id"),
        ts.alias("ts"),
        F.lower(etype).alias("event_type"),
        *([value.alias("value")] if value_col else []),
    ]
    return _by_customer(src, cid.isNotNull(), canonical)


def _event_value(name: str | None, decimal: str) -> tuple[Column, Column]:
    """The events' numeric ``value`` and the condition of a present but non-numeric one.

    As :func:`churnclv._io_values.event_value_select`: the source is read as
    trimmed text (decimal commas replaced with ``decimal=","``); empty text
    is a missing value, text that is no finite number a bad one.
    """
    from pyspark.sql import functions as F

    if name is None:
        return F.lit(None).cast("double"), F.lit(False)
    raw = F.col(f"`{name}`")
    text = F.trim(raw.cast("string"))
    source = F.regexp_replace(text, ",", ".") if decimal == "," else text
    value = F.when(text != "", source).cast("double")
    return value, raw.isNotNull() & (text != "") & _bad_number(value)


def _customers(spark: SparkSession, path: str, cm: ColumnMap) -> SparkDataFrame:
    from pyspark.sql import functions as F

    what = "customers"
    src = _read(spark, path, what)
    _require(src, {"customer_id": cm.customer_col}, path, what)
    cid = _id(src, cm.customer_col)
    parts = [cid.alias("customer_id")]
    signup = None
    for name in src.columns:
        if name == cm.customer_col:
            continue
        if name == "signup_ts":
            signup = _ts(src, name)
            parts.append(signup.alias("signup_ts"))
        else:
            parts.append(F.col(f"`{name}`"))
    bad_signup = signup.isNull() if signup is not None else None
    aggs = [F.count(F.lit(1)).alias("rows")]
    if bad_signup is not None:
        aggs.append(_count(bad_signup).alias("bad_ts"))
    stats = _collect(src.agg(*aggs), what, path)[0].asDict()
    if stats["rows"] == 0:
        raise InputError(f"{what} file is empty (no data rows): {path}")
    if stats.get("bad_ts"):
        sample = _sample(src, "signup_ts", bad_signup, what, path)  # type: ignore[arg-type]
        raise InputError(
            f"{what} file {path}: column 'signup_ts' has unparseable or missing timestamps, "
            f"e.g. {sample}"
        )
    frame = src.dropDuplicates().filter(cid.isNotNull()).select(*parts)
    dups = _collect(
        frame.groupBy("customer_id").count().filter("count > 1").select("customer_id").limit(5),
        what,
        path,
    )
    if dups:
        sample = ", ".join(repr(r[0]) for r in dups)
        raise InputError(f"customers file {path}: customer_id is not unique, e.g. {sample}")
    return frame


def _on_driver(
    spark: SparkSession,
    transactions: str,
    events: str | None,
    customers: str | None,
    cm: ColumnMap,
    report: LoadReport,
) -> SparkInputs:
    """CSV inputs: loaded on the driver by the DuckDB loader, then handed to Spark."""
    from churnclv.features._spark import register_frame

    tx = load_transactions_frame(transactions, cm, report)
    ev = load_events(events, cm, report) if events else None
    cust = load_customers(customers, cm, report) if customers else None
    purchases = tx.loc[tx["amount"] > 0, "ts"]
    frames = [
        register_frame(spark, f"churnclv_input_{name}", frame) if frame is not None else None
        for name, frame in (("transactions", tx), ("events", ev), ("customers", cust))
    ]
    return SparkInputs(
        frames[0],  # type: ignore[arg-type]
        frames[1],
        frames[2],
        transactions,
        None if purchases.empty else pd.Timestamp(purchases.min()),
        pd.Timestamp(tx["ts"].min()),
        events,
    )


def read_inputs(
    transactions: str | os.PathLike[str],
    events: str | os.PathLike[str] | None = None,
    customers: str | os.PathLike[str] | None = None,
    columns: ColumnMap | None = None,
    report: LoadReport | None = None,
) -> SparkInputs:
    """Read and validate the input tables with Spark (Parquet paths) or on the driver (CSV).

    Parameters
    ----------
    transactions, events, customers : path-like or str
        Parquet files, folders of Parquet files or URIs Spark reads; when any
        of them is a CSV file (by its suffix), all are loaded on the driver by
        :func:`churnclv.load_inputs` instead.
    columns : ColumnMap, optional
        Source column names (the CSV options apply to CSV inputs only).
    report : LoadReport, optional
        Collects the notes (rows skipped, returns, zero amounts).

    Raises
    ------
    InputError
        A missing or unreadable path, a missing column or invalid values, with
        the DuckDB loader's messages; or pyspark or Java 17+ missing.
    """
    from churnclv.features._spark import get_spark

    cm = columns or ColumnMap()
    rep = report if report is not None else LoadReport()
    paths = [os.fspath(p) if p is not None else None for p in (transactions, events, customers)]
    spark = get_spark()
    if any(p is not None and not _has_scheme(p) and is_csv(Path(p)) for p in paths):
        return _on_driver(spark, paths[0], paths[1], paths[2], cm, rep)  # type: ignore[arg-type]
    tx, first_purchase, first_ts = _transactions(spark, paths[0], cm, rep)  # type: ignore[arg-type]
    return SparkInputs(
        tx,
        _events(spark, paths[1], cm) if paths[1] else None,
        _customers(spark, paths[2], cm) if paths[2] else None,
        paths[0],  # type: ignore[arg-type]
        first_purchase,
        first_ts,
        paths[1],
    )
