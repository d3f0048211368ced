"""Batch scoring on Apache Spark: features and model predictions on executors.

The feature frame is computed by the Spark engine of the one feature
definition, the champion boosters run inside ``mapInPandas`` (each task
rebuilds them from the LightGBM model text and schema shipped with the
closure), and the collected predictions go through the same decision code as
:func:`churnclv.serving.score_features`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd

from churnclv._errors import InputError
from churnclv._io import InputTables
from churnclv.decisions import Policy, decide
from churnclv.features import finish_features, spark_features
from churnclv.serving._batch import SCORE_COLUMNS
from churnclv.training import BoosterModel, Champion

__all__ = ["score_spark"]

_PREDICTIONS = (("churn_probability", "churn"), ("predicted_value", "value"))


def _payload(model: BoosterModel) -> dict[str, Any]:
    """What an executor needs to rebuild ``model``: plain, picklable values."""
    return {
        "kind": model.kind,
        "params": model.params,
        "features": list(model.features_),
        "categories": dict(model.categories_),
        "booster": model.booster_.model_to_string(),
    }


def _rebuild(payload: dict[str, Any]) -> BoosterModel:
    import lightgbm as lgb

    model = BoosterModel(payload["kind"], payload["params"])
    model.features_ = payload["features"]
    model.categories_ = payload["categories"]
    model.booster_ = lgb.Booster(model_str=payload["booster"])
    return model


def _predictor(
    payloads: dict[str, dict[str, Any]],
) -> Any:
    """The ``mapInPandas`` function: adds one prediction column per model."""

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        models = {kind: _rebuild(p) for kind, p in payloads.items()}
        for batch in batches:
            for column, kind in _PREDICTIONS:
                batch[column] = models[kind].predict(batch) if len(batch) else []
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
        The columns of :func:`churnclv.serving.score` (DESIGN §7 columns, then
        ``as_of`` and ``model_version``), one row per customer, sorted by
        ``customer_id``; equal to the DuckDB path's result up to float rounding.

    Raises
    ------
    InputError
        When no customer has a purchase before ``as_of``, or pyspark or Java
        17+ is missing.
    """
    from pyspark.sql.types import DoubleType, StructField, StructType

    from churnclv.features._spark import to_pandas

    as_of = pd.Timestamp(as_of)
    feats, static = spark_features(
        tables.transactions, tables.events, tables.customers, as_of=as_of
    )
    schema = StructType(
        [*feats.schema.fields, *(StructField(col, DoubleType()) for col, _ in _PREDICTIONS)]
    )
    payloads = {"churn": _payload(champion.churn), "value": _payload(champion.value)}
    predicted = feats.mapInPandas(_predictor(payloads), schema).orderBy("as_of", "customer_id")
    scored = finish_features(to_pandas(predicted), static)
    if scored.empty:
        first = tables.transactions["ts"].min()
        raise InputError(f"as_of {as_of} is before all purchases (first transaction {first})")
    scored = decide(scored, policy, churn_horizon_days=champion.churn_horizon_days)
    scored["model_version"] = champion.model_version
    return scored[[*SCORE_COLUMNS, "as_of", "model_version"]].reset_index(drop=True)
