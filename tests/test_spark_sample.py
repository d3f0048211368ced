"""Spark picks the same customer sample as DuckDB and trains on it without collecting rows.

Skipped when pyspark or Java 17+ is missing; shares the session's Spark session.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _spark_env import forbid_driver_loads, require_spark

from churnclv._cli_output import load_tables
from churnclv._io import ColumnMap
from churnclv._sample import SAMPLE_RULE, sample_tables, spark_sample_inputs
from churnclv.cli import main

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


def _rows(frame: Any) -> pd.DataFrame | None:
    return None if frame is None else _spark.to_pandas(frame)


def test_spark_and_duckdb_sample_the_same_rows(tmp_path: Path) -> None:
    from churnclv.features._spark_inputs import read_inputs

    _spark.get_spark()
    paths = _write(tmp_path)
    loaded = load_tables(*paths, ColumnMap())
    duck, duck_sample = sample_tables(loaded, 9, seed=4)
    inputs = read_inputs(*paths)
    spark, spark_sample = spark_sample_inputs(inputs, 9, seed=4)
    assert spark_sample is not None
    assert spark_sample.ids == duck_sample.ids and spark_sample.total == 30
    for ours, theirs in zip(
        (spark.transactions, spark.events, spark.customers),
        (duck.transactions, duck.events, duck.customers),
        strict=True,
    ):
        assert ours.is_cached  # every training job reads the sample again
        pd.testing.assert_frame_equal(_canonical(_rows(ours)), _canonical(theirs))
    assert set(_rows(spark.transactions)["customer_id"]) == set(spark_sample.ids)
    assert spark_sample_inputs(inputs, None) == (inputs, None)
    everything, complete = spark_sample_inputs(inputs, 30)
    assert everything is inputs and complete is not None and complete.complete


def _runs(workdir: Path) -> Any:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir}/mlruns.db")
    (run,) = client.search_runs([client.get_experiment_by_name("churnclv").experiment_id])
    return run.data


def _no_input_rows(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Fail any load of an input on the driver, any frame but the cutoffs sent to Spark and
    any collect of a frame with input columns (``ts``, ``amount``); returns the columns of
    every frame collected to pandas."""
    forbid_driver_loads(monkeypatch)
    register = _spark.register_frame

    def send(spark: Any, name: str, *args: Any) -> Any:
        assert name in {"cutoffs", "tx_buckets", "ev_buckets"}, f"{name} sent from the driver"
        return register(spark, name, *args)

    monkeypatch.setattr(_spark, "register_frame", send)
    collected: list[list[str]] = []
    frame_class = type(_spark.get_spark().range(1))  # the classic DataFrame, not its base

    def guard(method: Any, record: bool) -> Any:
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            columns = self.columns
            assert not {"ts", "amount"} & set(columns), f"input rows collected: {columns}"
            if record:
                collected.append(columns)
            return method(self, *args, **kwargs)

        return run

    monkeypatch.setattr(frame_class, "toPandas", guard(frame_class.toPandas, True))
    monkeypatch.setattr(frame_class, "collect", guard(frame_class.collect, False))
    return collected


def test_spark_training_on_a_sample_equals_duckdb(
    generated_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train --engine spark --sample-customers` computes the features and labels on Spark
    (no input row collected) and trains the models of the in-process DuckDB training on
    the same sample: every metric and param equal."""
    _spark.get_spark()
    args = ["train", "--as-of", "2024-01-01", "--max-cutoffs", "2", "--sample-customers", "300"]
    for name in ("transactions", "events", "customers"):
        args += [f"--{name}", str(generated_dir / f"{name}.parquet")]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*args, "--workdir", str(tmp_path / "duckdb")]) == 0
    collected = _no_input_rows(monkeypatch)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([*args, "--workdir", str(tmp_path / "spark"), "--engine", "spark"]) == 0
    monkeypatch.undo()
    assert "training on 300 of 600 customers (seeded sample)" in printed.getvalue()
    assert "features and labels: spark" in printed.getvalue()
    # what reached the driver as frames: the labelled features and the features as of as_of
    assert len(collected) == 2 and all("recency_days" in c for c in collected)
    assert "churned" in collected[0] and "churned" not in collected[1]
    duck, spark = _runs(tmp_path / "duckdb"), _runs(tmp_path / "spark")
    assert len(duck.metrics) > 50 and spark.metrics == duck.metrics
    assert spark.params == duck.params and spark.params["sample_customers"] == "300"
    assert spark.tags["data_window"] == duck.tags["data_window"]
    assert (duck.tags["feature_engine"], spark.tags["feature_engine"]) == ("duckdb", "spark")
    assert spark.tags["sample_rule"] == SAMPLE_RULE
