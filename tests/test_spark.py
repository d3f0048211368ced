"""The Spark engine computes the same features, labels and scores as DuckDB.

Skipped as a whole when pyspark or Java 17+ is missing. One local Spark
session serves the whole test session.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _spark_env import forbid_driver_loads, require_spark

from churnclv._errors import InputError
from churnclv._generate import SyntheticData, generate
from churnclv._io import ColumnMap, load_transactions
from churnclv.features import build_features, build_labels, finish_features

require_spark()

from churnclv.features import _spark  # noqa: E402

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


def _write_parquet(folder: Path, **frames: pd.DataFrame) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in frames.items():
        paths[name] = folder / f"{name}.parquet"
        frame.to_parquet(paths[name], index=False)
    return paths


def test_parquet_inputs_are_scanned_by_spark_not_the_driver(
    data: SyntheticData, spark: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parquet paths are scanned by Spark (FileScan parquet of each path in the physical
    plan); no pandas loader runs and no input frame is sent from the driver."""
    from churnclv.features._spark_inputs import read_inputs

    paths = _write_parquet(
        tmp_path, transactions=data.transactions, events=data.events, customers=data.customers
    )
    duck = build_features(*paths.values(), as_of="2023-10-01")
    forbid_driver_loads(monkeypatch)
    sent: list[str] = []
    register = _spark.register_frame
    monkeypatch.setattr(
        _spark, "register_frame", lambda s, name, *a: sent.append(name) or register(s, name, *a)
    )
    feats, static = _spark.input_features(read_inputs(**paths), as_of="2023-10-01")
    spark.conf.set("spark.sql.maxMetadataStringLength", "10000")  # type: ignore[attr-defined]
    plan = feats._jdf.queryExecution().executedPlan().toString()
    for path in paths.values():
        assert re.search(rf"FileScan parquet [^\n]*Location: [^\n]*{re.escape(str(path))}", plan)
    # the rows are shuffled once per read, by customer, and the per-customer aggregates of
    # the feature SQL (per customer and cutoff, per customer and day) run without a shuffle
    reads = sum(
        len(re.findall(rf"FileScan parquet [^\n]*{re.escape(str(paths[name]))}", plan))
        for name in ("transactions", "events")
    )
    by_customer = re.findall(r"Exchange hashpartitioning\(__churnclv_customer#\d+, \d+\)", plan)
    assert len(by_customer) == reads > 0
    assert not re.search(
        r"Exchange hashpartitioning\(customer_id#\d+, (day#|cutoff#\d+, ce#)", plan
    )
    assert set(sent) <= {"cutoffs", "tx_buckets", "ev_buckets"}, sent
    got = finish_features(_spark.to_pandas(feats), static)
    _assert_same(duck, got)


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """Malformed Parquet inputs: the arguments of `features` and the message expected."""
    tx = pd.DataFrame(
        {"customer_id": ["c1", "c2"], "ts": pd.to_datetime(["2024-01-05", "2024-01-20"])}
    )
    cases = {
        "missing-column": (tx.rename(columns={"ts": "when"}).assign(amount=1.0), None, "'ts'"),
        "unparseable-ts": (
            tx.assign(ts=["2024-01-05", "yesterday-ish"], amount=1.0),
            None,
            "'yesterday-ish'",
        ),
        "nan-amount": (tx.assign(amount=[1.0, float("nan")]), None, "'amount'"),
        "string-amount": (tx.assign(amount=["1.5", "ten euros"]), None, "'ten euros'"),
        "duplicate-customers": (
            tx.assign(amount=1.0),
            pd.DataFrame({"customer_id": ["c1", "c1"], "segment": ["a", "b"]}),
            "not unique, e.g. 'c1'",
        ),
        "as-of-before-purchases": (tx.assign(amount=[0.0, 2.0]), None, "before all data"),
    }
    out: dict[str, tuple[list[str], str]] = {}
    for case, (frame, customers, expected) in cases.items():
        paths = _write_parquet(tmp / case, transactions=frame)
        args = ["--transactions", str(paths["transactions"]), "--as-of", "2024-01-10"]
        if customers is not None:
            args += [
                "--customers",
                str(_write_parquet(tmp / case, customers=customers)["customers"]),
            ]
        out[case] = (args, expected)
    out["missing-file"] = (
        ["--transactions", str(tmp / "nowhere.parquet"), "--as-of", "2024-01-10"],
        "not found",
    )
    return out


def test_spark_validation_errors_equal_duckdb(
    spark: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad Parquet inputs fail on Spark with DuckDB's message, exit 2 and no output."""
    from churnclv.cli import main

    for case, (args, expected) in _bad_inputs(tmp_path).items():
        errors = []
        for engine, out in (("duckdb", "f.parquet"), ("spark", "f.parquet"), ("spark", "dir/")):
            target = tmp_path / case / out
            code = main(
                [
                    "features",
                    *args,
                    "--out",
                    str(target) + "/" * out.endswith("/"),
                    "--engine",
                    engine,
                ]
            )
            err = capsys.readouterr().err
            assert code == 2, (case, engine, err)
            errors.append([line for line in err.splitlines() if line.startswith("error:")])
            assert not target.exists()
        assert errors[0] == errors[1] == errors[2], case
        assert len(errors[0]) == 1 and expected in errors[0][0], (case, errors[0])


def test_spark_event_values_and_vocabulary(spark: object, tmp_path: Path) -> None:
    """A non-numeric event value fails on Spark with DuckDB's message (file, column,
    sample); the vocabulary Spark counts is the one :func:`select_event_types` picks."""
    from churnclv._io import load_events
    from churnclv.features import select_event_types
    from churnclv.features._spark_inputs import SparkInputs, _events

    ev = pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c1", "c1"],
            "ts": pd.to_datetime(["2024-01-06", "2024-01-07", "2024-01-08", "2024-03-01"]),
            "event_type": ["app_open", "app_open", "nps", "late"],
            "score": [" ", None, "9", "very happy"],
        }
    )
    cm = ColumnMap(event_value_col="score")
    path = _write_parquet(tmp_path, events=ev)["events"]
    with pytest.raises(InputError) as duck:
        load_events(path, cm)
    with pytest.raises(InputError) as on_spark:
        _events(spark, str(path), cm)  # type: ignore[arg-type]
    assert str(on_spark.value) == str(duck.value)
    assert str(path) in str(duck.value) and "'score'" in str(duck.value)
    assert "e.g. 'very happy';" in str(duck.value)
    good = ev.iloc[:3].rename(columns={"score": "value"}).assign(value=[None, None, 9.0])
    events = _spark.register_frame(spark, "vocabulary_events", good)  # type: ignore[arg-type]
    inputs = SparkInputs(events, events, None, "", None, None)
    as_of = pd.Timestamp("2024-02-01")
    expected = select_event_types(good, as_of, top_k=1, named=["x"])
    assert expected == (("x", "nps", "app_open"), ("nps",))
    assert inputs.select_event_types(as_of, top_k=1, named=["x"]) == expected


@pytest.mark.slow
def test_score_spark_matches_duckdb_scoring(
    demo_workdir: Path, tmp_path: Path, spark: object
) -> None:
    """`score --engine spark` on Parquet paths (features, models and decisions on the
    executors, scores written by Spark to a folder) equals DuckDB scoring to 1e-6, with and
    without a budget; so does score(engine="spark") on in-memory frames."""
    from churnclv import champion_from_uri, load_inputs
    from churnclv.cli import main
    from churnclv.decisions import load_policy
    from churnclv.serving import score
    from churnclv.training import load_champion, tracking_uri_for

    uri = tracking_uri_for(demo_workdir)
    # the churn/value pair without the demo's uplift model, so the policy formula selects
    pair = f"models:/churnclv-churn/{load_champion(uri).churn_version}"
    champion = champion_from_uri(uri, pair)
    folder = demo_workdir / "data"
    paths = {name: folder / f"{name}.parquet" for name in ("transactions", "events", "customers")}
    # the tables as the DuckDB CLI path reads them (exact duplicate rows dropped, as Spark does)
    tables = load_inputs(*paths.values())
    as_of = tables.transactions["ts"].max().floor("D")
    policy = load_policy(None)
    duck = score(tables, as_of=as_of, champion=champion, policy=policy, budget=50.0)
    assert len(duck) > 500
    assert 0 < duck["selected"].sum() < (duck["action"] != "none").sum()
    # the in-memory frames path, no budget
    got = score(tables, as_of=as_of, champion=champion, policy=policy, engine="spark")
    _assert_same(score(tables, as_of=as_of, champion=champion, policy=policy), got)
    # the CLI on paths: a folder written by Spark, with the budget
    work = tmp_path / "work"
    args = [f"--{name}={path}" for name, path in paths.items()]
    out = tmp_path / "scores"
    code = main(
        [
            "score",
            *args,
            "--as-of",
            str(as_of.date()),
            "--out",
            f"{out}/",
            "--engine",
            "spark",
            "--budget",
            "50",
            "--workdir",
            str(work),
            "--tracking-uri",
            uri,
            "--model-uri",
            pair,
        ]
    )
    assert code == 0
    written = pd.read_parquet(out)
    assert written["customer_id"].is_monotonic_increasing
    _assert_same(duck.drop(columns="model_version"), written.drop(columns="model_version"))
    assert (written["model_version"] == champion.model_version).all()
    assert len(list((work / "snapshots").glob("*.parquet"))) == 1
