"""Spark picks the same customer sample as DuckDB and collects only its rows.

Skipped when pyspark or Java 17+ is missing; shares the session's Spark session.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from _spark_env import require_spark

from churnclv._cli_output import load_tables
from churnclv._io import ColumnMap
from churnclv._sample import sample_tables, spark_sample_tables

require_spark()

from churnclv.features import _spark  # noqa: E402

pytestmark = pytest.mark.spark


def _write(folder: Path) -> list[Path]:
    ids = [f"K{(i * 7) % 30:02d}" for i in range(90)]  # 30 customers, rows out of id order
    tx = pd.DataFrame(
        {
            "customer_id": ids,
            "ts": pd.date_range("2023-01-01", periods=90, freq="37h"),
            "amount": [float(i % 11) - 1.0 for i in range(90)],
        }
    )
    events = pd.DataFrame({"customer_id": ids[:40], "ts": tx["ts"][:40], "event_type": "visit"})
    customers = pd.DataFrame({"customer_id": sorted(set(ids)), "segment": "a"})
    paths = [folder / f"{name}.parquet" for name in ("transactions", "events", "customers")]
    for frame, path in zip((tx, events, customers), paths, strict=True):
        frame.to_parquet(path)
    return paths


def _canonical(frame: pd.DataFrame | None) -> pd.DataFrame:
    assert frame is not None
    keys = [c for c in ("customer_id", "ts", "amount", "event_type") if c in frame.columns]
    out = frame[keys].sort_values(keys).reset_index(drop=True)
    out["customer_id"] = out["customer_id"].astype(str)
    if "ts" in out.columns:
        out["ts"] = out["ts"].astype("datetime64[us]")
    return out


def test_spark_and_duckdb_sample_the_same_rows(tmp_path: Path) -> None:
    from churnclv.features._spark_inputs import read_inputs

    _spark.get_spark()
    paths = _write(tmp_path)
    loaded = load_tables(*paths, ColumnMap())
    duck, duck_sample = sample_tables(loaded, 9, seed=4)
    inputs = read_inputs(*paths)
    spark, spark_sample = spark_sample_tables(inputs, 9, seed=4)
    assert spark_sample is not None
    assert spark_sample.ids == duck_sample.ids and spark_sample.total == 30
    for ours, theirs in zip(
        (spark.transactions, spark.events, spark.customers),
        (duck.transactions, duck.events, duck.customers),
        strict=True,
    ):
        pd.testing.assert_frame_equal(_canonical(ours), _canonical(theirs))
    assert set(spark.transactions["customer_id"]) == set(spark_sample.ids)
    everything, no_sample = spark_sample_tables(inputs, None)
    assert no_sample is None
    pd.testing.assert_frame_equal(
        _canonical(everything.transactions), _canonical(loaded.transactions)
    )
