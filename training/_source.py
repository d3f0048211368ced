"""Where a training's feature and label frames come from: a feature source.

:func:`churnclv.train` asks a source for everything it reads from the input
tables: the earliest purchase (where cutoffs may start), the event vocabulary
chosen from the data, the labelled features at the training cutoffs, the
features as of ``as_of``, and the data tags of the run. Every frame it hands
back has one row per customer (per cutoff); BTYD, the splits and the models
work on those frames alone, so the raw rows never need to sit where the
models are fitted.

:class:`TablesSource` computes them in process with DuckDB from
:class:`~churnclv.InputTables` (what ``train(tables, ...)`` wraps);
:class:`churnclv.training._spark_source.SparkSource` computes them on Spark
and collects only the per-customer rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import pandas as pd

from churnclv._io import InputTables, check_as_of
from churnclv.features import build_labels
from churnclv.features._build import table_features
from churnclv.features._vocabulary import DEFAULT_TOP_K, Vocabulary, select_event_types

__all__ = ["FeatureSource", "TablesSource", "as_source"]


@runtime_checkable
class FeatureSource(Protocol):
    """What a training reads from its inputs (see the module docstring).

    ``engine`` names where the features are computed (``"duckdb"``, ``"spark"``).
    """

    engine: str

    def check_as_of(self, as_of: pd.Timestamp) -> None:
        """Raise :class:`~churnclv.InputError` when ``as_of`` precedes every purchase."""
        ...

    def first_purchase(self) -> pd.Timestamp:
        """The earliest purchase (``amount > 0``)."""
        ...

    def event_vocabulary(
        self, as_of: pd.Timestamp, top_k: int = DEFAULT_TOP_K, named: Sequence[str] = ()
    ) -> Vocabulary:
        """:func:`churnclv.features.select_event_types` of the events before ``as_of``."""
        ...

    def labelled_features(
        self,
        cutoffs: Sequence[pd.Timestamp],
        vocabulary: Vocabulary,
        horizons: tuple[float, float],
    ) -> pd.DataFrame:
        """The features at ``cutoffs`` with the labels ``churned`` and ``future_value`` of
        the churn and value horizons (days), sorted by ``as_of`` then ``customer_id``."""
        ...

    def features(self, as_of: pd.Timestamp, vocabulary: Vocabulary) -> pd.DataFrame:
        """The features as of ``as_of`` (no labels)."""
        ...

    def data_tags(self, as_of: pd.Timestamp) -> dict[str, str]:
        """The run tags ``data_fingerprint``, ``data_window`` and ``feature_engine``."""
        ...


class TablesSource:
    """The feature source of in-memory tables: features and labels by DuckDB, in process."""

    engine = "duckdb"

    def __init__(self, tables: InputTables) -> None:
        self.tables = tables

    def check_as_of(self, as_of: pd.Timestamp) -> None:
        check_as_of(self.tables.transactions, as_of)

    def first_purchase(self) -> pd.Timestamp:
        tx = self.tables.transactions
        return tx.loc[tx["amount"] > 0, "ts"].min()

    def event_vocabulary(
        self, as_of: pd.Timestamp, top_k: int = DEFAULT_TOP_K, named: Sequence[str] = ()
    ) -> Vocabulary:
        return select_event_types(self.tables.events, as_of, top_k=top_k, named=named)

    def labelled_features(
        self,
        cutoffs: Sequence[pd.Timestamp],
        vocabulary: Vocabulary,
        horizons: tuple[float, float],
    ) -> pd.DataFrame:
        frame = self.features(list(cutoffs), vocabulary)
        labels = build_labels(
            self.tables.transactions,
            frame,
            churn_horizon_days=horizons[0],
            value_horizon_days=horizons[1],
        )
        return frame.merge(labels, on=["customer_id", "as_of"], how="left", validate="one_to_one")

    def features(
        self, as_of: pd.Timestamp | Sequence[pd.Timestamp], vocabulary: Vocabulary
    ) -> pd.DataFrame:
        return table_features(self.tables, as_of=as_of, vocabulary=vocabulary)

    def data_tags(self, as_of: pd.Timestamp) -> dict[str, str]:
        from churnclv.training._tracking import fingerprint

        return {
            "data_fingerprint": fingerprint(self.tables),
            "data_window": f"{self.tables.transactions['ts'].min()} .. {as_of}",
            "feature_engine": self.engine,
        }


def as_source(tables: InputTables | FeatureSource) -> FeatureSource:
    """``tables`` as a feature source (in-memory tables get a :class:`TablesSource`)."""
    if isinstance(tables, InputTables):
        return TablesSource(tables)
    if isinstance(tables, FeatureSource):
        return tables
    raise TypeError(f"train needs InputTables or a feature source, got {type(tables).__name__}")
