"""The Spark engine computes the same features, labels and scores as DuckDB.

Skipped as a whole when pyspark or Java 17+ is missing. One local Spark
session serves the whole test session.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnclv._errors import InputError
from churnclv._generate import SyntheticData, generate
from churnclv._io import ColumnMap, InputTables, load_transactions
from churnclv.features import build_features, build_labels

if importlib.util.find_spec("pyspark") is None:
    pytest.skip("pyspark is not installed (pip install 'churnclv[spark]')", allow_module_level=True)

from churnclv.features import _spark

_JAVA = _spark._java_problem()
if _JAVA is not None:
    pytest.skip(f"the spark engine needs Java 17+: {_JAVA}", allow_module_level=True)

pytestmark = pytest.mark.spark

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "online_retail"
REAL_FILE = REAL_DATA / "online_retail.parquet"
CUTOFFS = [pd.Timestamp(c) for c in ("2023-03-01", "2023-07-15 12:30:00", "2024-01-01")]


@pytest.fixture(scope="session")
def spark():  # type: ignore[no-untyped-def]
    """The churnclv Spark session, started once."""
    return _spark.get_spark()


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    """400 generated customers with events and static attributes."""
    return generate(400, seed=21)


@pytest.fixture(scope="module")
def multi(data: SyntheticData, spark: object) -> tuple[pd.DataFrame, pd.DataFrame]:
    """DuckDB and Spark feature frames of the generated data at three cutoffs."""
    args = (data.transactions, data.events, data.customers)
    return (
        build_features(*args, as_of=CUTOFFS),
        build_features(*args, as_of=CUTOFFS, engine="spark"),
    )


def _assert_same(duck: pd.DataFrame, spark: pd.DataFrame) -> None:
    assert list(spark.columns) == list(duck.columns)
    assert spark.dtypes.astype(str).to_dict() == duck.dtypes.astype(str).to_dict()
    pd.testing.assert_frame_equal(spark, duck, check_exact=False, atol=1e-6, rtol=0)


def test_naive_timestamps_round_trip_unshifted(spark: object) -> None:
    """Naive µs timestamps go to Spark and back unchanged and give DuckDB's epoch seconds."""
    import duckdb

    ts = pd.Series(
        pd.to_datetime(
            ["2021-03-28 01:30:00.123456", "2021-10-31 01:30:00.000001", "1999-12-31 23:59:59"],
            format="ISO8601",
        )
    ).astype("datetime64[us]")
    frame = pd.DataFrame({"ts": ts})
    _spark.register_frame(spark, "ts_round_trip", frame)  # type: ignore[arg-type]
    got = _spark.to_pandas(
        spark.sql(  # type: ignore[attr-defined]
            "SELECT ts, unix_micros(ts) / 1e6 AS es FROM ts_round_trip"
        )
    )
    pd.testing.assert_series_equal(got["ts"].astype("datetime64[us]"), ts, check_names=False)
    want = duckdb.sql("SELECT epoch(ts) AS es FROM frame").df()["es"]
    np.testing.assert_array_equal(got["es"].to_numpy(), want.to_numpy())


def test_features_match_duckdb_at_one_cutoff(data: SyntheticData, spark: object) -> None:
    """At one cutoff the Spark frame equals DuckDB's: columns, dtypes, order, values."""
    args = (data.transactions, data.events, data.customers)
    duck = build_features(*args, as_of="2023-10-01")
    _assert_same(duck, build_features(*args, as_of="2023-10-01", engine="spark"))
    assert len(duck) > 100


def test_features_match_duckdb_at_many_cutoffs(multi: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """Stacked over three cutoffs the Spark frame equals DuckDB's."""
    duck, spark_frame = multi
    assert duck["as_of"].nunique() == len(CUTOFFS)
    _assert_same(duck, spark_frame)


def test_features_match_oracle(
    data: SyntheticData, multi: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """The Spark frame equals the pandas oracle of every feature."""
    oracle = pytest.importorskip("_oracle", reason="tests/_oracle.py is not present")
    want = oracle.oracle_features(data.transactions, data.events, data.customers, as_of=CUTOFFS)
    oracle.assert_features_match(multi[1], want)


def test_bucketed_stack_matches_duckdb_and_oracle(data: SyntheticData, spark: object) -> None:
    """At monthly midnight cutoffs (the bucketed form) Spark equals DuckDB and the oracle."""
    oracle = pytest.importorskip("_oracle", reason="tests/_oracle.py is not present")
    cutoffs = list(pd.date_range(end="2024-01-01", periods=4, freq="30D"))
    args = (data.transactions, data.events, data.customers)
    duck = build_features(*args, as_of=cutoffs)
    got = build_features(*args, as_of=cutoffs, engine="spark")
    _assert_same(duck, got)
    assert got["as_of"].nunique() == len(cutoffs)
    oracle.assert_features_match(got, oracle.oracle_features(*args, as_of=cutoffs))


def test_labels_match_duckdb(data: SyntheticData, multi: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """Labels of the stacked keys are the same on Spark and DuckDB."""
    keys = multi[0][["customer_id", "as_of"]]
    duck = build_labels(data.transactions, keys, churn_horizon_days=60, value_horizon_days=200)
    got = build_labels(
        data.transactions, keys, churn_horizon_days=60, value_horizon_days=200, engine="spark"
    )
    assert 0 < duck["churned"].mean() < 1
    _assert_same(duck, got)


def test_no_events_or_customers_and_empty_inputs(data: SyntheticData, spark: object) -> None:
    """Transactions alone, and an empty events frame, give DuckDB's frame on Spark."""
    tx = data.transactions
    _assert_same(
        build_features(tx, as_of="2023-10-01"),
        build_features(tx, as_of="2023-10-01", engine="spark"),
    )
    empty = data.events.iloc[:0]
    _assert_same(
        build_features(tx, empty, as_of="2023-10-01"),
        build_features(tx, empty, as_of="2023-10-01", engine="spark"),
    )


def test_missing_pyspark_is_an_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without pyspark the spark engine raises InputError naming the install command."""
    monkeypatch.setitem(__import__("sys").modules, "pyspark", None)
    with pytest.raises(InputError, match=r"churnclv\[spark\]"):
        _spark.check_spark()


@pytest.mark.realdata
def test_real_data_matches_duckdb(spark: object) -> None:
    """On UCI Online Retail as of 2011-09-01 Spark equals DuckDB for every customer."""
    if not REAL_FILE.exists():
        pytest.skip(f"{REAL_FILE} not present")
    tx = load_transactions(
        REAL_FILE,
        ColumnMap(
            customer_col="CustomerID",
            ts_col="InvoiceDate",
            quantity_col="Quantity",
            price_col="UnitPrice",
        ),
    )
    duck = build_features(tx, as_of="2011-09-01")
    got = build_features(tx, as_of="2011-09-01", engine="spark")
    assert len(duck) > 2000
    _assert_same(duck, got)


@pytest.mark.slow
def test_score_spark_matches_duckdb_scoring(demo_workdir: Path, spark: object) -> None:
    """Scoring on Spark (features and models on executors) equals DuckDB scoring to 1e-6."""
    from churnclv.decisions import load_policy, select_under_budget
    from churnclv.serving import score
    from churnclv.serving._spark import score_spark
    from churnclv.training import load_champion, tracking_uri_for

    champion = load_champion(tracking_uri_for(demo_workdir))
    folder = demo_workdir / "data"
    tables = InputTables(
        pd.read_parquet(folder / "transactions.parquet"),
        pd.read_parquet(folder / "events.parquet"),
        pd.read_parquet(folder / "customers.parquet"),
    )
    as_of = tables.transactions["ts"].max().floor("D")
    policy = load_policy(None)
    duck = score(tables, as_of=as_of, champion=champion, policy=policy)
    got = score_spark(tables, as_of=as_of, champion=champion, policy=policy)
    assert len(duck) > 500
    _assert_same(duck, got)
    # score(engine="spark") is score_spark plus the budget selection (the CLI's --engine spark)
    via_score = score(
        tables, as_of=as_of, champion=champion, policy=policy, engine="spark", budget=50.0
    )
    _assert_same(select_under_budget(got, policy, 50.0), via_score)
    assert 0 < via_score["selected"].sum() < (via_score["action"] != "none").sum()
