"""The feature engine against hand-computed values and against the pandas oracle."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from _oracle import assert_features_match, oracle_features, oracle_labels

from churnclv._generate import SyntheticData, generate
from churnclv._io import ColumnMap, load_transactions
from churnclv.features import build_features, build_labels

CUTOFF = pd.Timestamp("2024-03-01")
NAN = float("nan")
REAL_DATA = Path("/work/shared/data/online_retail/online_retail.parquet")
REAL_COLUMNS = ColumnMap(
    customer_col="CustomerID", ts_col="InvoiceDate", quantity_col="Quantity", price_col="UnitPrice"
)


def _tx(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series([r[0] for r in rows], dtype="str"),
            "ts": pd.Series(pd.to_datetime([r[1] for r in rows], format="ISO8601")).astype(
                "datetime64[us]"
            ),
            "amount": pd.Series([r[2] for r in rows], dtype="float64"),
        }
    )


def _ev(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series([r[0] for r in rows], dtype="str"),
            "ts": pd.Series(pd.to_datetime([r[1] for r in rows], format="ISO8601")).astype(
                "datetime64[us]"
            ),
            "event_type": pd.Series([r[2] for r in rows], dtype="str"),
        }
    )


# Cutoff 2024-03-01 00:00 (2024 is a leap year: February has 29 days).
HAND_TX = _tx(
    [
        # A: two purchases on Jan 10 (one purchase day), one on Feb 9, a return,
        # a purchase exactly at the cutoff and one after it (both invisible).
        ("A", "2024-01-10 10:00", 50.0),
        ("A", "2024-01-10 15:00", 30.0),
        ("A", "2024-02-09 12:00", 20.0),
        ("A", "2024-02-20 08:00", -10.0),
        ("A", "2024-03-01 00:00", 500.0),
        ("A", "2024-03-05 09:00", 99.0),
        # B: a purchase exactly on the 30-day boundary (inclusive) and one 6 h before the cutoff.
        ("B", "2023-12-02 00:00", 40.0),
        ("B", "2024-01-31 00:00", 60.0),
        ("B", "2024-02-29 18:00", 25.0),
        ("B", "2024-05-30 00:00:00.000001", 70.0),
        # C: only purchase after the cutoff -> no feature row.
        ("C", "2024-03-02 00:00", 100.0),
        # D: only a return before the cutoff -> no feature row.
        ("D", "2024-02-01 00:00", -15.0),
        # E: one purchase; label-window boundaries after the cutoff.
        ("E", "2024-02-14 12:00", 10.0),
        ("E", "2024-05-30 00:00", 40.0),
        ("E", "2025-03-01 00:00", -5.0),
        ("E", "2025-03-01 00:00:00.000001", -7.0),
    ]
)
HAND_EV = _ev(
    [
        ("A", "2024-01-15 00:00", "login"),
        ("A", "2024-02-25 00:00", "login"),
        ("A", "2024-02-15 12:00", "complaint"),
        ("A", "2024-02-28 00:00", "session"),
        ("B", "2024-01-31 00:00", "login"),
        ("B", "2024-02-29 23:00", "login"),
        ("B", "2024-02-10 00:00", "page_view"),
        ("C", "2024-02-20 00:00", "login"),
        ("E", "2024-03-01 00:00", "complaint"),
    ]
)
HAND_EXPECTED = pd.DataFrame(
    {
        "customer_id": ["A", "B", "E"],
        "recency_days": [20.5, 0.25, 15.5],
        "tenure_days": [50 + 14 / 24, 90.0, 15.5],
        "frequency": [1, 2, 0],
        "monetary_total": [90.0, 125.0, 10.0],
        "monetary_mean": [45.0, 125.0 / 3, 10.0],
        "gap_mean_days": [30.0, 44.5, NAN],
        "overdue_ratio": [20.5 / 30, 0.25 / 44.5, NAN],
        "tx_count_30d": [1, 2, 1],
        "ev_login_30d": [1, 2, 0],
        "days_since_complaint": [14.5, NAN, NAN],
    }
)


@pytest.fixture(scope="module")
def synthetic() -> SyntheticData:
    return generate(300, seed=11)


def test_hand_built_history_gives_hand_computed_features() -> None:
    """On a tiny hand-built history the key features equal values computed by hand."""
    got = build_features(HAND_TX, HAND_EV, as_of=CUTOFF)
    assert list(got["customer_id"]) == ["A", "B", "E"]
    assert (got["as_of"] == CUTOFF).all()
    pd.testing.assert_frame_equal(
        got[list(HAND_EXPECTED.columns)].reset_index(drop=True),
        HAND_EXPECTED,
        check_dtype=False,
        atol=1e-9,
        rtol=0,
    )


@pytest.mark.parametrize("engine", ["duckdb", "sqlite"])
def test_hand_built_history_matches_oracle(engine: str) -> None:
    """On the hand-built history every engine column equals the oracle."""
    for events in (HAND_EV, None):
        assert_features_match(
            build_features(HAND_TX, events, as_of=CUTOFF, engine=engine),
            oracle_features(HAND_TX, events, as_of=CUTOFF),
        )


def test_hand_built_labels() -> None:
    """Labels read (as_of, as_of + horizon] only: a row at as_of or 1 us past the end is ignored."""
    keys = pd.DataFrame(
        {"customer_id": pd.Series(["A", "B", "E"], dtype="str"), "as_of": [CUTOFF] * 3}
    )
    keys["as_of"] = keys["as_of"].astype("datetime64[us]")
    got = build_labels(HAND_TX, keys, churn_horizon_days=90, value_horizon_days=365)
    expected = pd.DataFrame(
        {
            "customer_id": ["A", "B", "E"],
            "churned": [False, True, False],
            "future_value": [99.0, 70.0, 35.0],
        }
    )
    pd.testing.assert_frame_equal(
        got[["customer_id", "churned", "future_value"]], expected, check_dtype=False
    )
    pd.testing.assert_frame_equal(got, oracle_labels(HAND_TX, keys), check_dtype=False)


def test_cutoff_before_all_data_gives_empty_frame_with_all_columns(
    synthetic: SyntheticData,
) -> None:
    """A cutoff before every purchase yields no rows but the same columns as a normal call."""
    d = synthetic
    early = d.transactions["ts"].min()
    empty = build_features(d.transactions, d.events, d.customers, as_of=early)
    full = build_features(d.transactions, d.events, d.customers, as_of=d.as_of)
    assert empty.empty
    assert list(empty.columns) == list(full.columns)


@pytest.mark.parametrize("engine_name", ["duckdb", "sqlite"])
@pytest.mark.parametrize("with_context", [True, False], ids=["events+customers", "tx-only"])
def test_engine_matches_oracle_single_cutoff(
    synthetic: SyntheticData, with_context: bool, engine_name: str
) -> None:
    """On generated data every feature column equals the oracle at a single cutoff."""
    d = synthetic
    ev, cust = (d.events, d.customers) if with_context else (None, None)
    engine = build_features(d.transactions, ev, cust, as_of=d.as_of, engine=engine_name)
    assert len(engine) > 200
    assert_features_match(engine, oracle_features(d.transactions, ev, cust, as_of=d.as_of))


# Cutoffs at any time of day take the direct form of the definition; several cutoffs all
# at midnight UTC take the bucketed form (SQLite has only the direct form).
ANY_TIME = (
    pd.Timedelta(days=-400),
    pd.Timedelta(days=-137, hours=-5, microseconds=-17),
    pd.Timedelta(0),
    pd.Timedelta(days=45, hours=12),
)
MIDNIGHTS = tuple(pd.Timedelta(days=d) for d in (-400, -365, -137, -30, -7, 0, 45))


@pytest.mark.parametrize("engine_name", ["duckdb", "sqlite"])
@pytest.mark.parametrize("seed", [3, 29])
@pytest.mark.parametrize("offsets", [ANY_TIME, MIDNIGHTS], ids=["any-time", "midnights"])
def test_engine_matches_oracle_multi_cutoff(
    seed: int, engine_name: str, offsets: tuple[pd.Timedelta, ...]
) -> None:
    """A multi-cutoff call on generated data equals the oracle for every column and cutoff."""
    d = generate(300, seed=seed)
    assert d.as_of == d.as_of.normalize()
    cutoffs = [d.as_of + off for off in offsets]
    engine = build_features(
        d.transactions, d.events, d.customers, as_of=cutoffs, engine=engine_name
    )
    assert engine["as_of"].nunique() == len(cutoffs)
    oracle = oracle_features(d.transactions, d.events, d.customers, as_of=cutoffs)
    assert_features_match(engine, oracle)


def test_bucketed_and_direct_forms_give_identical_frames(synthetic: SyntheticData) -> None:
    """At midnight cutoffs the bucketed SQL gives the direct SQL's frame, dtypes included."""
    from churnclv.features._engines import duckdb_query
    from churnclv.features._inputs import bucket_maps, cutoff_frame, input_relations
    from churnclv.features._sql import feature_sql

    d = synthetic
    cut = cutoff_frame([d.as_of - pd.Timedelta(days=k) for k in (0, 30, 60, 90, 365)])
    frames, static, with_signup = input_relations(d.transactions, d.events, d.customers, cut)
    buckets = bucket_maps(cut)
    assert set(buckets) == {"tx_buckets", "ev_buckets"}

    def run(bucketed: bool) -> pd.DataFrame:
        sql = feature_sql(
            with_events=True, static_columns=static, with_signup=with_signup, bucketed=bucketed
        )
        return duckdb_query({**frames, **buckets}, sql)

    direct, bucketed = run(False), run(True)
    assert len(direct) > 1000
    pd.testing.assert_frame_equal(bucketed, direct, check_exact=False, atol=1e-9, rtol=0)


@pytest.mark.parametrize(("churn_h", "value_h"), [(90, 365), (30, 60.5)])
def test_labels_match_oracle(synthetic: SyntheticData, churn_h: float, value_h: float) -> None:
    """Labels of generated feature rows at several cutoffs equal the oracle's labels."""
    d = synthetic
    cutoffs = [d.as_of - pd.Timedelta(days=200), d.as_of, d.as_of + pd.Timedelta(days=100)]
    keys = build_features(d.transactions, as_of=cutoffs)[["customer_id", "as_of"]]
    got = build_labels(d.transactions, keys, churn_horizon_days=churn_h, value_horizon_days=value_h)
    want = oracle_labels(
        d.transactions, keys, churn_horizon_days=churn_h, value_horizon_days=value_h
    )
    assert len(got) == len(keys)
    assert 0 < got["churned"].mean() < 1
    pd.testing.assert_frame_equal(
        got.sort_values(["as_of", "customer_id"], ignore_index=True),
        want,
        check_dtype=False,
        atol=1e-6,
        rtol=0,
    )


def test_spend_trend_is_zero_when_both_windows_net_to_zero() -> None:
    """When the last-90-day and prior-90-day net spends are both zero, spend_trend_90d is 0."""
    # Real pattern (Online Retail customer 13762): an order and its full cancellation,
    # both in the prior 90-day window; an older purchase (before both windows).
    lines = [13.20, 30.00, 69.12, 104.40]
    rows = [("X", "2023-06-01 09:00", 5.0)]
    rows += [("X", "2023-10-05 09:15", a) for a in lines]
    rows += [("X", "2023-10-19 15:23", -a) for a in reversed(lines)]
    tx = _tx(rows)
    assert math.fsum(tx["amount"].iloc[1:]) == 0.0
    got = build_features(tx, as_of=CUTOFF - pd.Timedelta(days=30))
    assert got.loc[0, "spend_prior_90d"] == pytest.approx(0.0, abs=1e-9)
    assert got.loc[0, "spend_90d"] == 0.0
    assert got.loc[0, "spend_trend_90d"] == 0.0


def _load_real() -> pd.DataFrame:
    if not REAL_DATA.exists():
        pytest.skip(f"{REAL_DATA} not present")
    return load_transactions(REAL_DATA, REAL_COLUMNS)


@pytest.mark.realdata
@pytest.mark.parametrize("engine_name", ["duckdb", "sqlite"])
def test_real_data_engine_matches_oracle(engine_name: str) -> None:
    """On UCI Online Retail as of 2011-09-01 the engine equals the oracle for every customer."""
    tx = _load_real()
    cutoff = pd.Timestamp("2011-09-01")
    engine = build_features(tx, as_of=cutoff, engine=engine_name)
    before = tx[(tx["ts"] < cutoff) & (tx["amount"] > 0)]
    assert len(engine) == before["customer_id"].nunique()
    assert set(engine["customer_id"]) == set(before["customer_id"])
    assert_features_match(engine, oracle_features(tx, as_of=cutoff))


@pytest.mark.realdata
def test_real_data_loader_keeps_distinct_invoice_lines() -> None:
    """Loading Online Retail keeps every distinct source row with a customer id (and its amount)."""
    tx = _load_real()
    src = f"read_parquet('{REAL_DATA}')"
    con = duckdb.connect()
    n_rows, total = con.execute(
        f"SELECT count(*), sum(Quantity * UnitPrice) FROM (SELECT DISTINCT * FROM {src}) "
        "WHERE CustomerID IS NOT NULL"
    ).fetchone()
    con.close()
    assert len(tx) == n_rows
    assert np.isclose(tx["amount"].sum(), total, rtol=1e-9)
