"""The Spark feature source of ``churnclv train --engine spark``.

A :class:`SparkSource` answers what :func:`churnclv.train` asks of its inputs
(:class:`~churnclv.training._source.FeatureSource`) with Spark jobs over a
:class:`~churnclv.features._spark_inputs.SparkInputs`, typically a seeded
customer sample (:func:`churnclv._sample.spark_sample_inputs`): the event
counts of the vocabulary, the earliest purchase, the labelled features of
the training cutoffs and the features as of ``as_of`` are computed on the
executors with the one feature and label SQL (Spark dialect). Only those
per-customer rows, a count per event type and a few aggregates reach the
driver; BTYD is fitted there on the features' RFM columns (one row per
customer), as in process.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from churnclv._errors import InputError
from churnclv._io import check_as_of
from churnclv.features._spark_train import (
    InputStats,
    collect_features,
    input_stats,
    labelled_features,
)
from churnclv.features._vocabulary import DEFAULT_TOP_K, Vocabulary

if TYPE_CHECKING:
    from churnclv.features._spark_inputs import SparkInputs

__all__ = ["SparkSource"]


class SparkSource:
    """Features and labels of Spark input tables, computed on Spark.

    Parameters
    ----------
    inputs : SparkInputs
        The (sampled) input tables.
    """

    engine = "spark"

    def __init__(self, inputs: SparkInputs) -> None:
        self.inputs = inputs

    @functools.cached_property
    def stats(self) -> InputStats:
        """The earliest purchase and row and the fingerprint of the inputs (Spark jobs)."""
        return input_stats(self.inputs)

    def check_as_of(self, as_of: pd.Timestamp) -> None:
        first = self.stats.first_purchase
        probe = pd.DataFrame(
            {"ts": [first or self.stats.first_ts], "amount": [0.0 if first is None else 1.0]}
        )
        check_as_of(probe, as_of, source=self.inputs.source)

    def first_purchase(self) -> pd.Timestamp:
        if self.stats.first_purchase is None:
            raise InputError(f"transactions file {self.inputs.source}: no purchase (amount > 0)")
        return self.stats.first_purchase

    def event_vocabulary(
        self, as_of: pd.Timestamp, top_k: int = DEFAULT_TOP_K, named: Sequence[str] = ()
    ) -> Vocabulary:
        return self.inputs.select_event_types(as_of, top_k=top_k, named=named)

    def labelled_features(
        self,
        cutoffs: Sequence[pd.Timestamp],
        vocabulary: Vocabulary,
        horizons: tuple[float, float],
    ) -> pd.DataFrame:
        return labelled_features(self.inputs, cutoffs, vocabulary, horizons)

    def features(self, as_of: pd.Timestamp, vocabulary: Vocabulary) -> pd.DataFrame:
        from churnclv.features._spark import input_features

        sdf, static = input_features(
            self.inputs, as_of=as_of, event_types=vocabulary[0], valued_event_types=vocabulary[1]
        )
        return collect_features(sdf, static)

    def data_tags(self, as_of: pd.Timestamp) -> dict[str, str]:
        return {
            "data_fingerprint": self.stats.fingerprint,
            "data_window": f"{self.stats.first_ts} .. {as_of}",
            "feature_engine": self.engine,
        }
