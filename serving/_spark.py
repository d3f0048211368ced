"""Batch scoring on Apache Spark: features, models and decisions on the executors.

The feature frame is computed by the Spark engine of the one feature
definition, from Spark inputs (:func:`churnclv.features._spark_inputs.read_inputs`:
Parquet paths scanned on the executors) or from in-memory frames. The
champion and the policy are shipped once as a Spark broadcast and each
executor runs :func:`churnclv.serving.score_features` itself on its
partitions (``mapInPandas``), so the decisions are made by exactly the same
code as the DuckDB path. Decisions rank against the champion's reference
population, never against the batch, which is what makes a partition's
scores equal the whole frame's. Only the per-customer scores leave the
executors: collected to the driver (:func:`score_spark`) or written by Spark
as a Parquet folder (:func:`write_scores`). A campaign budget is the one
global step: the ids, costs and gains of the customers whose action pays are
collected and selected on the driver by
:func:`churnclv.decisions.select_under_budget`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churnclv._io import InputTables, check_as_of
from churnclv.decisions import Policy, select_under_budget
from churnclv.features import finish_features, spark_features
from churnclv.serving._batch import score_features
from churnclv.training import Champion

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame

    from churnclv.features._spark_inputs import SparkInputs

__all__ = ["score_spark", "spark_scores", "write_scores"]

_PREDICTIONS = (("churn_probability", "churn"), ("predicted_value", "value"))
#: The score columns the budget selection reads.
_BUDGET_COLUMNS = (
    "customer_id",
    "churn_probability",
    "predicted_value",
    "action",
    "expected_net_gain",
    "action_cost",
    "expected_saved_value",
)


def _predictor(models: Any) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The ``mapInPandas`` function: one prediction column per champion model.

    ``models`` is a Spark broadcast of ``{"churn": model, "value": model}``.
    """

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        loaded = models.value
        for batch in batches:
            for column, kind in _PREDICTIONS:
                batch[column] = (
                    loaded[kind].predict(batch) if len(batch) else np.empty(0, dtype=float)
                )
            yield batch

    return predict


def _scorer(shipped: Any) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The ``mapInPandas`` function: feature rows -> :func:`score_features` rows.

    ``shipped`` is a Spark broadcast of ``(champion, policy, static columns)``.
    """

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        champion, policy, static = shipped.value
        for batch in batches:
            if len(batch):
                yield score_features(finish_features(batch, static), champion, policy)

    return score


def _score_schema(feats: SparkDataFrame, static: list[str], champion: Any, policy: Any) -> Any:
    """The Spark schema of :func:`score_features` rows, from its result on one made-up row."""
    import datetime as dt

    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    def value(kind: pa.DataType) -> pa.Array:
        if pa.types.is_timestamp(kind):
            return pa.array([dt.datetime(2000, 1, 1)], pa.timestamp("us"))
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return pa.array(["x"], kind)
        if pa.types.is_boolean(kind):
            return pa.array([False])
        if pa.types.is_integer(kind) or pa.types.is_floating(kind):
            return pa.array([0], kind)
        return pa.nulls(1, kind)

    arrow = to_arrow_schema(feats.schema, timezone="UTC")
    row = pa.table({f.name: value(f.type) for f in arrow}).to_pandas()
    scored = score_features(finish_features(row, static), champion, policy)
    schema = pa.Schema.from_pandas(scored, preserve_index=False)
    return from_arrow_schema(schema, prefer_timestamp_ntz=False)


def _has_reference(champion: Champion) -> bool:
    return bool(getattr(champion.value, "reference_", None))


def _need_both(champion: Champion) -> None:
    """Spark scoring runs the churn and value models on the executors: it needs both."""
    from churnclv._errors import InputError

    if champion.churn is None or champion.value is None:
        gone = ", ".join(k for k in champion.missing if k != "uplift")
        raise InputError(
            f"--engine spark needs churn and value champions (missing: {gone}); use --engine duckdb"
        )


def spark_scores(
    inputs: InputTables | SparkInputs,
    *,
    as_of: pd.Timestamp | str,
    champion: Champion,
    policy: Policy,
) -> SparkDataFrame:
    """The scores of every customer as a lazy Spark DataFrame (no budget selection).

    Features, models and decisions all run on the executors; rows come in
    ``customer_id`` order. Needs a champion with a reference population (every
    champion churnclv trains has one).

    Raises
    ------
    InputError
        When ``as_of`` is before every purchase, pyspark or Java 17+ is missing, or a
        churn or value champion is missing.
    ValueError
        For a champion without a reference population.
    """
    from churnclv.features._spark import get_spark, quiet_pandas_warnings

    _need_both(champion)
    if not _has_reference(champion):
        raise ValueError("executor-side scoring needs a champion with a reference population")
    feats, static = _features(inputs, pd.Timestamp(as_of), champion)
    schema = _score_schema(feats, static, champion, policy)
    shipped = get_spark().sparkContext.broadcast((champion, policy, static))
    with quiet_pandas_warnings():
        return feats.mapInPandas(_scorer(shipped), schema)


def _features(
    inputs: InputTables | SparkInputs, as_of: pd.Timestamp, champion: Champion
) -> tuple[Any, list[str]]:
    """The lazy Spark feature frame of frames or of Spark inputs, after the as_of check,
    with the champion's event vocabulary."""
    from churnclv.features._spark import input_features
    from churnclv.features._vocabulary import model_vocabulary

    types, valued = model_vocabulary(champion.churn, champion.value, champion.uplift)
    if isinstance(inputs, InputTables):
        check_as_of(inputs.transactions, as_of)
        return spark_features(
            inputs.transactions,
            inputs.events,
            inputs.customers,
            as_of=as_of,
            event_types=types,
            valued_event_types=valued,
        )
    inputs.check_as_of(as_of)
    return input_features(inputs, as_of=as_of, event_types=types, valued_event_types=valued)


def score_spark(
    tables: InputTables | SparkInputs,
    *,
    as_of: pd.Timestamp | str,
    champion: Champion,
    policy: Policy,
    budget: float | None = None,
) -> pd.DataFrame:
    """Score every customer with a purchase before ``as_of`` on Spark; collect the scores.

    Parameters
    ----------
    tables : InputTables or SparkInputs
        In-memory frames (sent to Spark from the driver) or Spark inputs read
        from paths on the executors.
    as_of : timestamp or str
        The cutoff; rows at or after it are ignored.
    champion : Champion
        The models (:func:`churnclv.training.load_champion`).
    policy : Policy
        The decision policy.
    budget : float, optional
        The campaign budget (:func:`churnclv.decisions.select_under_budget`).

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`churnclv.serving.score`, one row per customer in
        the same order; equal to the DuckDB path's result up to float rounding.

    Raises
    ------
    InputError
        When no customer has a purchase before ``as_of``, for a negative
        budget, pyspark or Java 17+ missing, or no churn or value champion.
    """
    from churnclv.features._spark import to_pandas

    _need_both(champion)
    as_of = pd.Timestamp(as_of)
    if not _has_reference(champion):
        scored = _score_on_driver(tables, as_of, champion, policy)
    else:
        scored = to_pandas(spark_scores(tables, as_of=as_of, champion=champion, policy=policy))
    return select_under_budget(scored, policy, budget) if budget is not None else scored


def _score_on_driver(
    tables: InputTables | SparkInputs, as_of: pd.Timestamp, champion: Champion, policy: Policy
) -> pd.DataFrame:
    """Models on the executors, decisions on the driver over the collected feature rows.

    For champions without a reference population, whose value tiers are
    shares of the whole scored batch.
    """
    from pyspark.sql.types import DoubleType, StructField, StructType

    from churnclv.features._spark import get_spark, quiet_pandas_warnings, to_pandas

    feats, static = _features(tables, as_of, champion)
    schema = StructType(
        [*feats.schema.fields, *(StructField(col, DoubleType()) for col, _ in _PREDICTIONS)]
    )
    models = get_spark().sparkContext.broadcast({"churn": champion.churn, "value": champion.value})
    try:
        with quiet_pandas_warnings():
            predicted = feats.mapInPandas(_predictor(models), schema)
        rows = finish_features(to_pandas(predicted.orderBy("as_of", "customer_id")), static)
    finally:
        models.unpersist()
    predictions = (
        rows["churn_probability"].to_numpy(float),
        rows["predicted_value"].to_numpy(float),
    )
    features = rows.drop(columns=[col for col, _ in _PREDICTIONS])
    return score_features(features, champion, policy, predictions=predictions)


def _with_budget(scores: SparkDataFrame, policy: Policy, budget: float) -> SparkDataFrame:
    """``selected`` under ``budget``: the paying customers' costs collected and chosen on the
    driver by :func:`select_under_budget` (in ``customer_id`` order, as on DuckDB)."""
    from pyspark.sql import functions as F

    from churnclv.features._spark import get_spark, register_frame, to_pandas

    paying = to_pandas(scores.filter(F.col("action") != "none").select(*_BUDGET_COLUMNS))
    chosen = select_under_budget(paying.sort_values("customer_id", kind="stable"), policy, budget)
    ids = chosen.loc[chosen["selected"], ["customer_id"]].reset_index(drop=True)
    ids["chosen"] = True
    if ids.empty:
        picked = get_spark().createDataFrame([], "customer_id string, chosen boolean")
    else:
        picked = register_frame(get_spark(), "churnclv_budget_selection", ids)
    columns = [c if c != "selected" else "_selected" for c in scores.columns]
    joined = scores.join(picked, on="customer_id", how="left")
    joined = joined.withColumn("_selected", F.coalesce(F.col("chosen"), F.lit(False)))
    return joined.select(*columns).withColumnRenamed("_selected", "selected").orderBy("customer_id")


def write_scores(scores: SparkDataFrame, folder: str, policy: Policy, budget: float | None) -> str:
    """Write ``scores`` (with the budget selection) as a Parquet folder, by Spark.

    See :func:`churnclv.features._spark.write_folder`; returns the folder.
    """
    from pyspark import StorageLevel

    from churnclv.features._spark import write_folder

    if budget is None:
        return write_folder(scores, folder)
    select_under_budget(pd.DataFrame(columns=list(_BUDGET_COLUMNS)), policy, budget)  # checks
    scores = scores.persist(StorageLevel.DISK_ONLY)
    try:
        return write_folder(_with_budget(scores, policy, budget), folder)
    finally:
        scores.unpersist()
