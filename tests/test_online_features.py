"""The service's feature session: SQLite for small batches, DuckDB for large, one answer."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from churnclv._generate import SyntheticData, generate
from churnclv.features import build_features
from churnclv.features._session import FeatureSession, canonical_frames
from churnclv.serving._requests import CustomerIn

STATIC = ["plan", "region", "acquisition_channel"]


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    d = generate(60, seed=5)
    # the canonical frames the service builds from requests
    return dataclasses.replace(
        d,
        transactions=d.transactions[["customer_id", "ts", "amount"]],
        events=d.events[["customer_id", "ts", "event_type"]],
        customers=d.customers[["customer_id", "signup_ts", *STATIC]],
    )


@pytest.mark.parametrize(
    ("sqlite_max_rows", "engine"), [(10**9, "sqlite"), (0, "duckdb")], ids=["sqlite", "duckdb"]
)
def test_session_equals_build_features_on_either_engine(
    data: SyntheticData, sqlite_max_rows: int, engine: str
) -> None:
    """Both routes of the session return build_features' frame, dtypes included."""
    session = FeatureSession(STATIC, sqlite_max_rows=sqlite_max_rows)
    try:
        got = session.features(data.transactions, data.events, data.customers, data.as_of)
        assert session.calls == {
            "sqlite": int(engine == "sqlite"),
            "duckdb": int(engine == "duckdb"),
        }
    finally:
        session.close()
    want = build_features(data.transactions, data.events, data.customers, as_of=data.as_of)
    assert len(got) > 40
    assert got.dtypes.astype(str).to_dict() == want.dtypes.astype(str).to_dict()
    pd.testing.assert_frame_equal(got, want, check_exact=False, atol=1e-9, rtol=0)


def test_session_routes_by_batch_rows(data: SyntheticData) -> None:
    """Batches up to sqlite_max_rows transaction + event rows go to SQLite, larger to DuckDB."""
    one = data.transactions["customer_id"].iloc[0]
    tx = data.transactions[data.transactions["customer_id"] == one]
    ev = data.events[data.events["customer_id"] == one]
    cust = data.customers[data.customers["customer_id"] == one]
    session = FeatureSession(STATIC, sqlite_max_rows=len(tx) + len(ev))
    try:
        small = session.features(tx, ev, cust, data.as_of)
        large = session.features(data.transactions, data.events, data.customers, data.as_of)
        assert session.calls == {"sqlite": 1, "duckdb": 1}
    finally:
        session.close()
    pd.testing.assert_frame_equal(
        small.reset_index(drop=True),
        large[large["customer_id"] == one].reset_index(drop=True),
        check_exact=False,
        atol=1e-9,
        rtol=0,
        check_categorical=False,
    )


def test_session_gives_an_empty_frame_when_nobody_bought_before_as_of(
    data: SyntheticData,
) -> None:
    """A batch with no purchase before as_of yields no rows, with the usual columns, on SQLite."""
    session = FeatureSession(STATIC)
    try:
        early = data.transactions["ts"].min()
        got = session.features(
            data.transactions.head(5), data.events.head(0), data.customers, early
        )
    finally:
        session.close()
    want = build_features(data.transactions, data.events, data.customers, as_of=data.as_of)
    assert got.empty
    assert list(got.columns) == list(want.columns)


def _request_customers(data: SyntheticData, full: pd.DataFrame | None = None) -> list[CustomerIn]:
    """The generated histories as request customers; every third one with +02:00 timestamps
    and upper-case event types (what canonicalisation must undo). With ``full`` (the
    generated transactions), transactions carry its category and channel, every fifth none."""
    tz = timezone(timedelta(hours=2))
    out = []
    for i, (cid, tx) in enumerate(data.transactions.groupby("customer_id", sort=True)):
        rows = [{"ts": t, "amount": a} for t, a in zip(tx["ts"], tx["amount"], strict=True)]
        if full is not None:
            extra = full.loc[tx.index]
            for j, row in enumerate(rows):
                if j % 5:
                    row["category"] = extra["category"].iloc[j]
                    row["channel"] = extra["channel"].iloc[j]
        ev = data.events[data.events["customer_id"] == cid]
        row = data.customers[data.customers["customer_id"] == cid].iloc[0]

        def stamp(ts: pd.Timestamp, shifted: bool = i % 3 == 0) -> datetime:
            return ts.tz_localize("UTC").tz_convert(tz).to_pydatetime() if shifted else ts

        out.append(
            CustomerIn(
                customer_id=str(cid),
                transactions=[row | {"ts": stamp(row["ts"])} for row in rows],
                events=[
                    {"ts": stamp(t), "event_type": e.upper() if i % 3 == 0 else e}
                    for t, e in zip(ev["ts"], ev["event_type"], strict=True)
                ],
                signup_ts=None if pd.isna(row["signup_ts"]) else stamp(row["signup_ts"]),
                attributes={c: row[c] for c in STATIC if i % 4 or c != "region"},
            )
        )
    return out


@pytest.mark.parametrize("sqlite_max_rows", [10**9, 0], ids=["sqlite rows", "duckdb frames"])
def test_request_customers_give_the_frames_features(
    data: SyntheticData, sqlite_max_rows: int
) -> None:
    """Request customers, as SQLite rows or as frames for DuckDB, give build_features' frame."""
    customers = _request_customers(data)
    keys = [f"k{i}" for i in range(len(customers))]
    session = FeatureSession(STATIC, sqlite_max_rows=sqlite_max_rows)
    try:
        got = session.customer_features(customers, keys, data.as_of)
        assert session.calls["sqlite"] == int(sqlite_max_rows > 0)
    finally:
        session.close()
    tx, ev, cust = canonical_frames(customers, STATIC, keys)
    want = build_features(tx, ev, cust, as_of=data.as_of)
    assert len(got) > 40
    assert got.dtypes.astype(str).to_dict() == want.dtypes.astype(str).to_dict()
    pd.testing.assert_frame_equal(got, want, check_exact=False, atol=1e-9, rtol=0)


def test_request_columns_hold_the_frames_values(data: SyntheticData) -> None:
    """customer_columns (SQLite, no frame) holds customer_features' values, column by column."""
    customers = _request_customers(data)
    keys = [f"k{i}" for i in range(len(customers))]
    session = FeatureSession(STATIC)
    try:
        got = session.customer_columns(customers, keys, data.as_of)
        want = session.customer_features(customers, keys, data.as_of)
    finally:
        session.close()
    assert list(got) == list(want.columns)
    for col in want.columns:
        if col in STATIC:  # strings here, categoricals in the frame: same values
            assert list(got[col]) == want[col].astype(object).tolist(), col
        else:
            assert str(got[col].dtype) == str(want[col].dtype), col
            pd.testing.assert_series_equal(pd.Series(got[col], name=col), want[col], obj=col)


@pytest.mark.parametrize("sqlite_max_rows", [10**9, 0], ids=["sqlite rows", "duckdb frames"])
def test_request_categories_and_channels_give_the_frames_breadth(
    data: SyntheticData, sqlite_max_rows: int
) -> None:
    """Request transactions with category and channel give build_features' breadth columns."""
    full = generate(60, seed=5).transactions
    customers = _request_customers(data, full)
    keys = [f"k{i}" for i in range(len(customers))]
    session = FeatureSession(
        STATIC, sqlite_max_rows=sqlite_max_rows, breadth=("category", "channel")
    )
    try:
        got = session.customer_features(customers, keys, data.as_of)
    finally:
        session.close()
    tx, ev, cust = canonical_frames(customers, STATIC, keys)
    assert {"category", "channel"} <= set(tx.columns)
    want = build_features(tx, ev, cust, as_of=data.as_of)
    assert 30 < got["n_categories"].notna().sum() < len(got)  # first rows lack a category
    pd.testing.assert_frame_equal(got, want, check_exact=False, atol=1e-9, rtol=0)
