"""scan_inputs validates files as load_inputs does and leaves Parquet rows in the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnclv import (
    ColumnMap,
    InputError,
    InputScans,
    InputTables,
    Scan,
    _io_scan,
    build_features,
    check_as_of,
    load_champion,
    load_inputs,
    load_policy,
    scan_inputs,
    score,
)
from churnclv._io import LoadReport
from churnclv.training import tracking_uri_for

TX = pd.DataFrame(
    {
        "CustomerID": [17850.0, 17850.0, 17850.0, 13047.0, np.nan, np.nan, 13047.0, 12583.0],
        "InvoiceDate": pd.to_datetime(
            [
                "2024-01-03 10:00",
                "2024-02-10 09:30",
                "2024-02-10 09:30",  # an exact duplicate of the row above
                "2024-01-20 12:00",
                "2024-01-21 08:00",  # no customer id
                "2024-01-21 08:00",  # ... twice
                "2024-03-01 16:45",
                "2024-03-02 11:00",
            ]
        ),
        "Quantity": [2, -1, -1, 3, 1, 1, 0, 4],
        "UnitPrice": [5.0, 20.0, 20.0, 1.5, 2.0, 2.0, 7.0, 2.5],
        "StockCode": ["a", "b", "b", "c", "d", "d", "e", "f"],
    }
)
COLUMNS = ColumnMap(
    customer_col="CustomerID", ts_col="InvoiceDate", quantity_col="Quantity", price_col="UnitPrice"
)

EVENTS = pd.DataFrame(  # named as COLUMNS maps them, as the transactions are
    {
        "CustomerID": [17850.0, 17850.0, 17850.0, 13047.0, 12583.0, 99999.0],
        "InvoiceDate": pd.to_datetime(
            ["2024-01-05", "2024-02-01", "2024-02-01", "2024-02-15", "2024-03-01", "2024-01-01"]
        ),
        "event_type": ["Login", "nps", "nps", "login", "complaint", "login"],
        "value": [np.nan, 7.0, 7.0, np.nan, np.nan, np.nan],
    }
)


def _both(tmp_path: Path, tx: pd.DataFrame, columns: ColumnMap | None = None, **kw: Path) -> tuple:
    path = tmp_path / "tx.parquet"
    tx.to_parquet(path, index=False)
    loaded, scanned = LoadReport(), LoadReport()
    tables = load_inputs(path, columns=columns, report=loaded, **kw)
    scans = scan_inputs(path, columns=columns, report=scanned, **kw)
    return tables, loaded, scans, scanned


@pytest.mark.parametrize("sort_max_rows", [100, 0], ids=["hashes sorted", "hashes counted"])
def test_scan_gives_the_rows_and_notes_of_load_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sort_max_rows: int
) -> None:
    monkeypatch.setattr(_io_scan, "SORT_MAX_ROWS", sort_max_rows)
    tables, loaded, scans, scanned = _both(tmp_path, TX, COLUMNS)
    assert isinstance(scans.transactions, Scan)
    assert scans.transactions.distinct
    assert scanned.notes == loaded.notes
    assert scanned.notes == [
        "transactions tx.parquet: 2 exact duplicate rows dropped",
        "transactions tx.parquet: 1 rows without a customer id skipped",
        "transactions tx.parquet: 1 return rows (negative amount, e.g. cancelled invoices) kept: "
        "they reduce monetary totals and net future value",
        "transactions tx.parquet: 1 zero-amount rows kept (they are not purchases)",
    ]
    expected = pd.DataFrame(
        {
            "customer_id": pd.array(["12583", "13047", "13047", "17850", "17850"], dtype="str"),
            "ts": pd.to_datetime(
                [
                    "2024-03-02 11:00",
                    "2024-01-20 12:00",
                    "2024-03-01 16:45",
                    "2024-01-03 10:00",
                    "2024-02-10 09:30",
                ]
            ).astype("datetime64[us]"),
            "amount": [10.0, 4.5, 0.0, 10.0, -20.0],
        }
    )
    pd.testing.assert_frame_equal(scans.transactions.frame(), expected)
    pd.testing.assert_frame_equal(tables.transactions, expected)


def test_a_file_without_duplicates_is_read_without_distinct(tmp_path: Path) -> None:
    tx = TX.drop(index=[2, 5]).reset_index(drop=True)
    _, loaded, scans, scanned = _both(tmp_path, tx, COLUMNS)
    assert not scans.transactions.distinct
    assert "DISTINCT" not in scans.transactions.sql()
    assert scanned.notes == loaded.notes


def test_the_scan_records_the_first_purchase_for_check_as_of(tmp_path: Path) -> None:
    tables, _, scans, _ = _both(tmp_path, TX, COLUMNS)
    assert scans.transactions.first_purchase == pd.Timestamp("2024-01-03 10:00")
    assert scans.transactions.first_ts == pd.Timestamp("2024-01-03 10:00")
    check_as_of(scans.transactions, "2024-01-04")
    for tx in (tables.transactions, scans.transactions):
        with pytest.raises(InputError, match=r"before all data.*first purchase 2024-01-03 10:00"):
            check_as_of(tx, "2024-01-02", source="tx.parquet")


def test_a_csv_input_is_loaded_into_a_frame(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    TX.to_csv(path, index=False)
    scans = scan_inputs(path, columns=COLUMNS)
    tables = load_inputs(path, columns=COLUMNS)
    assert isinstance(scans.transactions, pd.DataFrame)
    pd.testing.assert_frame_equal(scans.transactions, tables.transactions)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (TX.drop(columns=["UnitPrice"]), "missing required column 'UnitPrice'"),
        (TX.assign(InvoiceDate=["x"] * len(TX)), "unparseable or missing timestamps"),
        (TX.assign(Quantity=["one"] * len(TX)), "non-numeric or missing values"),
        (TX.assign(CustomerID=np.nan), "no rows with a customer id"),
    ],
)
def test_scan_raises_what_load_inputs_raises(
    tmp_path: Path, frame: pd.DataFrame, message: str
) -> None:
    path = tmp_path / "tx.parquet"
    frame.to_parquet(path, index=False)
    with pytest.raises(InputError, match=message) as loaded:
        load_inputs(path, columns=COLUMNS)
    with pytest.raises(InputError, match=message) as scanned:
        scan_inputs(path, columns=COLUMNS)
    assert str(scanned.value) == str(loaded.value)


def test_features_from_scans_equal_features_from_frames(tmp_path: Path) -> None:
    ev_path = tmp_path / "events.parquet"
    EVENTS.to_parquet(ev_path, index=False)
    tables, _, scans, _ = _both(tmp_path, TX, COLUMNS, events=ev_path)
    assert isinstance(scans.events, Scan) and scans.events.distinct
    for valued in ((), ("nps",)):
        kw = {"as_of": "2024-04-01", "event_types": ("login", "nps"), "valued_event_types": valued}
        from_frames = build_features(tables.transactions, tables.events, **kw)
        from_scans = build_features(scans.transactions, scans.events, **kw)
        pd.testing.assert_frame_equal(from_scans, from_frames)
    assert from_scans.loc[from_scans["customer_id"] == "17850", "ev_nps_90d"].item() == 1


def test_events_without_a_value_column_read_it_as_null(tmp_path: Path) -> None:
    ev_path = tmp_path / "events.parquet"
    EVENTS.drop(columns=["value"]).to_parquet(ev_path, index=False)
    tables, _, scans, _ = _both(tmp_path, TX, COLUMNS, events=ev_path)
    kw = {"as_of": "2024-04-01", "valued_event_types": ("nps",)}
    from_scans = build_features(scans.transactions, scans.events, **kw)
    pd.testing.assert_frame_equal(
        from_scans, build_features(tables.transactions, tables.events, **kw)
    )
    assert from_scans["ev_nps_value_last"].isna().all()


def test_every_engine_reads_scans(tmp_path: Path) -> None:
    tables, _, scans, _ = _both(tmp_path, TX, COLUMNS)
    expected = build_features(tables.transactions, as_of="2024-04-01", engine="sqlite")
    got = build_features(scans.transactions, as_of="2024-04-01", engine="sqlite")
    pd.testing.assert_frame_equal(got, expected)
    assert isinstance(scans.to_tables(), InputTables)


def test_scoring_scans_equals_scoring_frames(demo_workdir: Path) -> None:
    data = demo_workdir / "data"
    paths = [data / f"{n}.parquet" for n in ("transactions", "events", "customers")]
    tables, scans = load_inputs(*paths), scan_inputs(*paths)
    assert isinstance(scans, InputScans) and isinstance(scans.events, Scan)
    champion, policy = load_champion(tracking_uri_for(demo_workdir)), load_policy()
    as_of = pd.Timestamp("2024-01-01")
    by_frames = score(tables, as_of=as_of, champion=champion, policy=policy)
    by_scans = score(scans, as_of=as_of, champion=champion, policy=policy)
    pd.testing.assert_frame_equal(by_scans, by_frames, check_exact=False, rtol=1e-9)


_rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", None]),
        st.integers(0, 3),  # day
        st.sampled_from([-5.0, 0.0, 2.5, 10.0]),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=_rows)
def test_scan_and_load_agree_on_any_small_file(tmp_path: Path, rows: list) -> None:
    tx = pd.DataFrame(rows, columns=["customer_id", "day", "amount"])
    tx["ts"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(tx.pop("day"), unit="D")
    path = tmp_path / "tx.parquet"
    tx.to_parquet(path, index=False)
    loaded, scanned = LoadReport(), LoadReport()
    try:
        tables = load_inputs(path, report=loaded)
    except InputError as err:
        with pytest.raises(InputError, match="no rows with a customer id"):
            scan_inputs(path)
        assert "no rows with a customer id" in str(err)
        return
    scans = scan_inputs(path, report=scanned)
    assert scanned.notes == loaded.notes
    pd.testing.assert_frame_equal(scans.transactions.frame(), tables.transactions)
