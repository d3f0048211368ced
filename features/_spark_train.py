"""Training frames on Spark: labelled features and input statistics of Spark input tables.

The feature SQL and the label SQL (:mod:`churnclv.features._sql`, Spark
dialect) run on the executors over the input tables of a
:class:`~churnclv.features._spark_inputs.SparkInputs`; the features of every
cutoff are joined with their labels there, so what reaches the driver is one
row per customer and cutoff, never an input row. :func:`input_stats` gives
the few numbers a training needs besides (earliest purchase and row, and an
order-independent fingerprint of the rows), one aggregate per table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from churnclv._errors import InputError
from churnclv.features._sql import label_sql

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame

    from churnclv.features._spark_inputs import SparkInputs

__all__ = ["InputStats", "collect_features", "input_stats", "labelled_features"]

#: The last clause of the label SQL (:func:`churnclv.features._sql.label_sql`).
_LABEL_ORDER = "ORDER BY k.as_of, k.customer_id"


def labelled_features(
    inputs: SparkInputs,
    cutoffs: Sequence[pd.Timestamp],
    vocabulary: tuple[Sequence[str], Sequence[str]],
    horizons: tuple[float, float],
) -> pd.DataFrame:
    """The features at ``cutoffs`` with their labels, computed on Spark and collected.

    The columns of :func:`churnclv.features.build_features` followed by
    ``churned`` and ``future_value`` of :func:`churnclv.features.build_labels`
    (churn and value ``horizons`` in days), sorted by ``as_of`` then
    ``customer_id``: the frame ``build_features`` merged with ``build_labels``
    gives in process. ``vocabulary`` is the event types and valued event types.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from churnclv.features._spark import (
        get_spark,
        sort_rows,
        unsorted_features,
        without_final_order,
    )

    if horizons[0] <= 0 or horizons[1] <= 0:
        raise InputError("horizons must be positive numbers of days")
    feats, static = unsorted_features(
        inputs, as_of=list(cutoffs), event_types=vocabulary[0], valued_event_types=vocabulary[1]
    )
    # the label SQL reads the feature rows' keys and the features are joined with the labels:
    # the rows (one per customer and cutoff) are computed once and kept on the executors
    feats = feats.persist(StorageLevel.MEMORY_AND_DISK)
    feats.select("customer_id", "as_of").createOrReplaceTempView("keys")
    sql = label_sql(horizons[0], horizons[1], dialect="spark")
    labels = get_spark().sql(without_final_order(sql, _LABEL_ORDER))
    f, lab = feats.alias("f"), labels.alias("l")
    on = (F.col("f.customer_id") == F.col("l.customer_id")) & (F.col("f.as_of") == F.col("l.as_of"))
    joined = f.join(lab, on, "left").select(
        *(F.col(f"f.`{c}`") for c in feats.columns),
        F.col("l.churned").alias("churned"),
        F.col("l.future_value").alias("future_value"),
    )
    try:
        return collect_features(sort_rows(joined), static)
    finally:
        feats.unpersist()


def collect_features(sdf: SparkDataFrame, static: Sequence[str]) -> pd.DataFrame:
    """Collect a (labelled) feature frame to pandas in the engine-independent dtypes.

    Raises
    ------
    InputError
        When the rows exceed ``spark.driver.maxResultSize`` (the message says
        how to raise it or sample fewer customers).
    """
    from churnclv.features._build import finish_features
    from churnclv.features._spark import to_pandas

    try:
        rows = to_pandas(sdf)
    except Exception as exc:
        if "maxResultSize" not in str(exc):
            raise
        raise InputError(
            "the training features of the customers are larger than spark.driver.maxResultSize: "
            "raise it (--spark-conf spark.driver.maxResultSize=8g, with the driver memory to "
            "hold them) or train on fewer customers (--sample-customers)"
        ) from None
    out = finish_features(rows, static)
    if "churned" in out.columns:
        out["churned"] = out["churned"].astype(bool)
    return out


@dataclass(frozen=True)
class InputStats:
    """The earliest purchase and row of the transactions and a fingerprint of the tables."""

    first_purchase: pd.Timestamp | None
    first_ts: pd.Timestamp | None
    fingerprint: str


def input_stats(inputs: SparkInputs) -> InputStats:
    """:class:`InputStats` of ``inputs``: one aggregate job per table.

    The fingerprint hashes each table's row count and the sum (mod 2**64) of
    Spark's ``xxhash64`` of every row: it does not depend on row order or
    partitioning. It is not the in-process fingerprint of
    :func:`churnclv.training._tracking.fingerprint` (pandas hashes).
    """
    from pyspark.sql import functions as F

    def row_hash(frame: SparkDataFrame) -> list[Any]:
        cols = [F.col(f"`{c}`") for c in sorted(frame.columns)]
        return [F.count(F.lit(1)).alias("n"), F.sum(F.xxhash64(*cols)).alias("h")]

    tx = inputs.transactions
    purchase = F.when(F.col("amount") > 0, F.col("ts"))
    row = tx.agg(  # epoch microseconds: collected datetimes would be in the local time zone
        *row_hash(tx),
        F.unix_micros(F.min(purchase)).alias("first_purchase"),
        F.unix_micros(F.min("ts")).alias("first_ts"),
    ).collect()[0]
    digest = hashlib.sha256(f"transactions:{row['n']}:{row['h']}".encode())
    for name, frame in (("events", inputs.events), ("customers", inputs.customers)):
        if frame is not None:
            other = frame.agg(*row_hash(frame)).collect()[0]
            digest.update(f";{name}:{other['n']}:{other['h']}".encode())
    stamp = lambda v: None if v is None else pd.Timestamp(v, unit="us")  # noqa: E731
    return InputStats(stamp(row["first_purchase"]), stamp(row["first_ts"]), digest.hexdigest()[:16])
