"""The seeded customer sample of ``churnclv train --sample-customers N``.

One rule picks the sample on every engine: each distinct customer id (as a
string) gets the key ``blake2b(f"{seed}:{id}", digest_size=8)`` read as an
unsigned big-endian integer, and the ``N`` ids with the smallest keys (ties
broken by the id) are the sample. The key of a customer depends only on its
id and the seed, so the sample does not depend on row order, on the engine, or
on which other customers are present beyond their count. DuckDB supplies the
distinct ids (one column, O(customers)) and the keys are computed here; on
Spark the executors compute the keys and only the sampled ids reach the
driver (:func:`spark_sample`).

:func:`sample_tables` filters in-memory tables to the sample; with Spark,
:func:`spark_sample_inputs` filters the rows on the executors (a broadcast
semi-join) and keeps them there: training computes the features and labels
of the sample on Spark too. Features of a customer depend on that customer's
rows alone, so the training frames built from the sampled rows equal the
sampled customers' rows of the full frames.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from churnclv._io import InputTables

__all__ = [
    "SAMPLE_RULE",
    "Sample",
    "sample_customers",
    "sample_tables",
    "spark_sample",
    "spark_sample_inputs",
]

#: The rule in words (logged with the training run).
SAMPLE_RULE = "smallest blake2b-64('<seed>:<customer_id>') keys, ties by id"


@dataclass(frozen=True)
class Sample:
    """The sampled customer ids and how many customers there were to sample from."""

    ids: list[str]
    total: int
    requested: int
    seed: int

    @property
    def complete(self) -> bool:
        """Whether the sample holds every customer (``requested >= total``)."""
        return len(self.ids) == self.total


def _key(seed: int, customer_id: str) -> int:
    digest = hashlib.blake2b(f"{seed}:{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def sample_customers(ids: Iterable[Any], n: int, seed: int = 0) -> Sample:
    """The ``n`` customers of ``ids`` with the smallest seeded keys (all when fewer).

    ``ids`` may repeat and come in any order; missing values are ignored. The
    returned ids are sorted.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    distinct = {str(i) for i in ids if i is not None and not (isinstance(i, float) and i != i)}
    chosen = heapq.nsmallest(n, distinct, key=lambda i: (_key(seed, i), i))
    return Sample(sorted(chosen), len(distinct), n, seed)


def _keep(frame: pd.DataFrame | None, ids: set[str]) -> pd.DataFrame | None:
    if frame is None:
        return None
    return frame[frame["customer_id"].astype(str).isin(ids)].reset_index(drop=True)


def sample_tables(tables: InputTables, n: int, seed: int = 0) -> tuple[InputTables, Sample]:
    """``tables`` restricted to the sample of the customers with transactions."""
    sample = sample_customers(tables.transactions["customer_id"].unique(), n, seed)
    if sample.complete:
        return tables, sample
    ids = set(sample.ids)
    kept = InputTables(
        _keep(tables.transactions, ids),
        _keep(tables.events, ids),
        _keep(tables.customers, ids),
    )
    return kept, sample


def _key_hex(seed: int, customer_id: str) -> str:
    """:func:`_key` as 16 hex digits: ordered as strings as the keys are as numbers."""
    return hashlib.blake2b(f"{seed}:{customer_id}".encode(), digest_size=8).hexdigest()


def spark_sample(transactions: Any, n: int, seed: int = 0) -> Sample:
    """:func:`sample_customers` of a Spark frame's customer ids, picked on the executors.

    The keys are computed by the executors' Python workers (a pandas UDF of
    the same blake2b key, as 16 hex digits) and Spark keeps the ``n``
    smallest (key, id) pairs, a top-``n`` per partition merged on the driver;
    only those ``n`` ids and the count of distinct ids reach the driver.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    from pyspark.sql import functions as F

    @F.pandas_udf("string")  # type: ignore[call-overload]
    def key(ids: pd.Series) -> pd.Series:
        return ids.map(lambda i: _key_hex(seed, i))

    ids = transactions.select("customer_id").where(F.col("customer_id").isNotNull()).distinct()
    keyed = ids.select(key("customer_id").alias("key"), "customer_id")
    chosen = [r["customer_id"] for r in keyed.orderBy("key", "customer_id").limit(n).collect()]
    total = len(chosen) if len(chosen) < n else ids.count()
    return Sample(sorted(chosen), total, n, seed)


def spark_sample_inputs(inputs: Any, n: int | None, seed: int = 0) -> tuple[Any, Sample | None]:
    """Spark inputs restricted to the sample, still on Spark.

    ``inputs`` is a :class:`~churnclv.features._spark_inputs.SparkInputs`. Only
    the sampled customer ids reach the driver (:func:`spark_sample`); each table
    is filtered by a broadcast semi-join on the sampled ids and persisted on
    the executors (memory, then disk), as every training job reads it again.
    ``n`` None, or a sample of every customer, returns ``inputs`` unchanged.
    """
    if n is None:
        return inputs, None
    from dataclasses import replace

    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from churnclv.features._spark import get_spark

    sample = spark_sample(inputs.transactions, n, seed)
    if sample.complete:
        return inputs, sample
    ids = get_spark().createDataFrame([(i,) for i in sample.ids], "customer_id string")
    chosen = F.broadcast(ids)

    def keep(frame: Any) -> Any:
        if frame is None:
            return None
        kept = frame.join(chosen, "customer_id", "left_semi")
        return kept.persist(StorageLevel.MEMORY_AND_DISK)

    sampled = replace(
        inputs,
        transactions=keep(inputs.transactions),
        events=keep(inputs.events),
        customers=keep(inputs.customers),
    )
    return sampled, sample
