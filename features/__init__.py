"""Point-in-time features and labels (DESIGN §4, §5).

One definition (:mod:`churnclv.features._sql`) computes the feature vector of
every customer as of each cutoff from rows with ``ts < cutoff`` only; training
stacks many cutoffs in one pass, scoring and the service use one. The same
text runs on DuckDB (embedded default), Apache Spark (``engine="spark"``) or,
for small inputs such as the service's batches, SQLite (``engine="sqlite"``,
and :class:`~churnclv.features._session.FeatureSession` on long-lived
connections).
"""

from churnclv.features._build import (
    ENGINES,
    NON_FEATURE_COLUMNS,
    build_features,
    build_labels,
    finish_features,
    rfm_summary,
    spark_features,
)
from churnclv.features._sql import DEFAULT_EVENT_TYPES, WINDOWS
from churnclv.features._vocabulary import select_event_types

__all__ = [
    "DEFAULT_EVENT_TYPES",
    "ENGINES",
    "NON_FEATURE_COLUMNS",
    "WINDOWS",
    "build_features",
    "build_labels",
    "finish_features",
    "rfm_summary",
    "select_event_types",
    "spark_features",
]
