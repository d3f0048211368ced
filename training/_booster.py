"""What churnclv's LightGBM models share: booster training and their saved schema.

:class:`BoosterBase` trains a booster with early stopping on an inner
customer split and writes and reads the ``schema.json`` fields every
booster-backed model has; :class:`~churnclv.training.BoosterModel` (one booster)
and :class:`~churnclv.training.TwoPartValueModel` (two) build on it.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from churnclv.training._inputs import InputSchema
from churnclv.training._scorable import (
    TrainingRecord,
    estimator_record,
    init_params,
    write_schema,
)

__all__ = ["GBM_COMMON", "MIN_ROWS", "BoosterBase"]

#: The LightGBM settings every booster of churnclv shares (churn, Tweedie value, two-part).
GBM_COMMON: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
}

_KINDS = ("churn", "value")
MIN_ROWS = 50
_EARLY_STOPPING_ROUNDS = 40


class BoosterBase(InputSchema, TrainingRecord, BaseEstimator, metaclass=ABCMeta):
    """What the LightGBM models share: booster training and the ``schema.json`` record.

    A subclass has ``kind``, ``seed`` and ``num_boost_round`` and says which
    LightGBM parameters it trains with (:meth:`booster_params`).
    """

    kind: str
    seed: int
    num_boost_round: int

    @abstractmethod
    def booster_params(self) -> dict[str, Any]:
        """The LightGBM parameters the model trains with (``schema.json``'s ``params``)."""

    def _check_labels(self, frame: pd.DataFrame, y: np.ndarray) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be 'churn' or 'value', got {self.kind!r}")
        if len(frame) != len(y):
            raise ValueError("frame and labels differ in length")

    def _train_booster(
        self, params: dict[str, Any], x: np.ndarray, y: np.ndarray, customer_ids: pd.Series
    ) -> lgb.Booster:
        """Train one booster on the matrix ``x``; 10% of customers (by hash) stop it early."""
        ids = customer_ids.astype(str)
        inner = (pd.util.hash_pandas_object(ids, index=False).to_numpy() % 10) == 0
        cat_idx = [self.features_.index(c) for c in self.categories_]
        full = {"verbose": -1, "seed": self.seed, "num_threads": 0, **params}
        by_name = full.pop("monotone_by_feature", None)
        if by_name:  # LightGBM wants one constraint per column, in column order
            full["monotone_constraints"] = [int(by_name.get(c, 0)) for c in self.features_]
        names = list(self.features_)
        dtrain = lgb.Dataset(
            x[~inner],
            y[~inner],
            feature_name=names,
            categorical_feature=cat_idx,
            free_raw_data=False,
        )
        dvalid = lgb.Dataset(
            x[inner], y[inner], reference=dtrain, feature_name=names, categorical_feature=cat_idx
        )
        return lgb.train(
            full,
            dtrain,
            num_boost_round=self.num_boost_round,
            valid_sets=[dvalid],
            callbacks=[lgb.early_stopping(_EARLY_STOPPING_ROUNDS, verbose=False)],
        )

    def _gain(self, *boosters: lgb.Booster) -> pd.Series:
        """Total gain per feature over ``boosters``, highest first."""
        gain = sum(b.feature_importance(importance_type="gain") for b in boosters)
        return pd.Series(gain, index=self.features_).sort_values(ascending=False)

    def _save(
        self, folder: str | Path, schema: dict[str, Any], boosters: dict[str, lgb.Booster]
    ) -> Path:
        """Write ``schema.json`` (``schema`` with the common fields) and each booster's
        text file into ``folder``."""
        model = schema.pop("model")
        out = write_schema(folder, {"model": model, **self._schema_common(), **schema})
        for name, booster in boosters.items():
            booster.save_model(str(out / name))
        return out

    def _schema_common(self) -> dict[str, Any]:
        """The ``schema.json`` fields every booster-backed model writes."""
        schema = {
            "kind": self.kind,
            "features": self.features_,
            "categories": self.categories_,
            "params": self.booster_params(),
            **self._record(),
        }
        record = estimator_record(self)
        if record is not None:
            schema["estimator"] = record
        return schema

    @classmethod
    def _from_schema(cls, schema: Mapping[str, Any]) -> Self:
        """An instance with the constructor parameters ``schema.json`` recorded, and the
        fields :meth:`_schema_common` wrote restored."""
        params = init_params(schema, cls)
        model = cls(**(cls._legacy_init(schema) if params is None else params))
        model._clear_code_caches()
        model.features_ = schema["features"]
        model.categories_ = schema["categories"]
        model._restore_record(schema)
        return model

    @classmethod
    @abstractmethod
    def _legacy_init(cls, schema: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor parameters of a ``schema.json`` with no ``estimator`` record."""
