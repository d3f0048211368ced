"""Batch scoring on Apache Spark: features and model predictions on executors.

The feature frame is computed by the Spark engine of the one feature
definition; the champion models (pickled once, shipped as a Spark broadcast)
predict inside ``mapInPandas`` on the executors; the collected rows then go
through :func:`churnclv.serving.score_features` itself, with the models
replaced by stand-ins that return the Spark predictions, so the decisions are
made by exactly the same code as the DuckDB path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from churnclv._io import InputTables, check_as_of
from churnclv.decisions import Policy
from churnclv.features import finish_features, spark_features
from churnclv.serving._batch import score_features
from churnclv.training import Champion

__all__ = ["score_spark"]

_PREDICTIONS = (("churn_probability", "churn"), ("predicted_value", "value"))


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


def score_spark(
    tables: InputTables,
    *,
    as_of: pd.Timestamp | str,
    champion: Champion,
    policy: Policy,
) -> pd.DataFrame:
    """Score every customer with a purchase before ``as_of``, features and models on Spark.

    Parameters
    ----------
    tables : InputTables
        Transactions, optional events and customers.
    as_of : timestamp or str
        The cutoff; rows at or after it are ignored.
    champion : Champion
        The models (:func:`churnclv.training.load_champion`).
    policy : Policy
        The decision policy.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`churnclv.serving.score`, one row per customer in
        the same order; equal to the DuckDB path's result up to float rounding.
        Every customer is ``selected`` whose action pays (no budget here:
        :func:`churnclv.serving.score` applies one).

    Raises
    ------
    InputError
        When no customer has a purchase before ``as_of``, or pyspark or Java
        17+ is missing.
    """
    from pyspark.sql.types import DoubleType, StructField, StructType

    from churnclv.features._spark import get_spark, quiet_pandas_warnings, to_pandas

    as_of = pd.Timestamp(as_of)
    check_as_of(tables.transactions, as_of)
    feats, static = spark_features(
        tables.transactions, tables.events, tables.customers, as_of=as_of
    )
    schema = StructType(
        [*feats.schema.fields, *(StructField(col, DoubleType()) for col, _ in _PREDICTIONS)]
    )
    models = get_spark().sparkContext.broadcast({"churn": champion.churn, "value": champion.value})
    try:
        with quiet_pandas_warnings():
            predicted = feats.mapInPandas(_predictor(models), schema)
        predicted = predicted.orderBy("as_of", "customer_id")
        rows = finish_features(to_pandas(predicted), static)
    finally:
        models.unpersist()
    predictions = (
        rows["churn_probability"].to_numpy(float),
        rows["predicted_value"].to_numpy(float),
    )
    features = rows.drop(columns=[col for col, _ in _PREDICTIONS])
    return score_features(features, champion, policy, predictions=predictions)
