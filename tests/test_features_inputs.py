"""Feature inputs given as Parquet paths: scanned by DuckDB, same frame as from pandas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnclv._errors import InputError
from churnclv._generate import SyntheticData, generate
from churnclv.features import _build, _engines, _inputs, build_features, rfm_summary


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate(120, seed=7)


@pytest.fixture(scope="module")
def files(data: SyntheticData, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    out = {}
    for name in ("transactions", "events", "customers"):
        out[name] = folder / f"{name}.parquet"
        getattr(data, name).to_parquet(out[name], index=False)
    return out


@pytest.mark.parametrize("engine", ["duckdb", "sqlite"])
def test_parquet_paths_give_the_same_frame_as_frames(
    data: SyntheticData, files: dict[str, Path], engine: str
) -> None:
    """Paths to Parquet files and the frames they hold yield identical feature frames."""
    cutoffs = [data.as_of - pd.Timedelta(days=90), data.as_of]
    want = build_features(
        data.transactions, data.events, data.customers, as_of=cutoffs, engine=engine
    )
    got = build_features(
        files["transactions"],
        str(files["events"]),
        files["customers"],
        as_of=cutoffs,
        engine=engine,
    )
    assert len(got) > 150
    pd.testing.assert_frame_equal(got, want, check_exact=False, atol=1e-9, rtol=0)


def test_a_missing_parquet_file_is_a_clear_input_error(tmp_path: Path) -> None:
    """A path that does not exist is named in an InputError, not a DuckDB trace."""
    with pytest.raises(InputError, match=r"transactions: no such file .*nope\.parquet"):
        build_features(tmp_path / "nope.parquet", as_of="2024-01-01")


def test_a_parquet_file_without_a_required_column_is_named(
    data: SyntheticData, tmp_path: Path
) -> None:
    """A Parquet input lacking a canonical column gets an InputError naming the column."""
    path = tmp_path / "tx.parquet"
    data.transactions.drop(columns=["amount"]).to_parquet(path, index=False)
    with pytest.raises(InputError, match="lacks columns amount"):
        build_features(path, as_of=data.as_of)


@pytest.mark.parametrize("n_cutoffs", [1, 2])
@pytest.mark.parametrize("day_count", ["bitmap", "count-distinct"])
@pytest.mark.parametrize("source", ["frame", "parquet"])
def test_rfm_summary_equals_the_rfm_columns_of_the_full_vector(
    data: SyntheticData,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    day_count: str,
    source: str,
    n_cutoffs: int,
) -> None:
    """rfm_summary gives exactly build_features' RFM columns, at one cutoff and at several."""
    if day_count == "count-distinct":
        monkeypatch.setattr(_engines, "_DAY_BITMAP_BUDGET", 0)
    tx: pd.DataFrame | Path = data.transactions
    if source == "parquet":
        tx = tmp_path / "tx.parquet"
        data.transactions.to_parquet(tx, index=False)
    span = _engines.day_span(_inputs.relation(tx, ["ts"], "transactions"), 2)
    assert (span is None) == (day_count == "count-distinct")
    cutoffs = [data.as_of - pd.Timedelta(days=200, hours=7), data.as_of][-n_cutoffs:]
    full = build_features(data.transactions, as_of=cutoffs)
    got = rfm_summary(tx, observation_period_end=cutoffs)
    cols = list(got.columns)
    assert cols == [
        "customer_id",
        "as_of",
        "recency_days",
        "tenure_days",
        "frequency",
        "n_purchases",
        "monetary_total",
        "monetary_mean",
    ]
    assert len(got) > 100 * n_cutoffs
    pd.testing.assert_frame_equal(got, full[cols], check_exact=False, atol=1e-9, rtol=0)


def test_rfm_summary_counts_returns_in_money_only() -> None:
    """Returns lower the monetary total but are no purchase, no purchase day and no customer."""
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "r", "b"],
            "ts": pd.to_datetime(
                [
                    "2023-01-01 09:00",  # a: purchase
                    "2023-01-01 18:00",  # a: same day, a second purchase
                    "2023-01-03 12:00",  # a: return on a day without purchase
                    "2023-01-05 00:00",  # a: purchase
                    "2023-01-02 00:00",  # r: only a return
                    "2023-01-11 00:00",  # b: after the cutoff
                ]
            ).astype("datetime64[us]"),
            "amount": [10.0, 30.0, -5.0, 20.0, -7.0, 99.0],
        }
    )
    got = rfm_summary(tx, observation_period_end="2023-01-10")
    expected = pd.DataFrame(
        {
            "customer_id": pd.array(["a"], dtype="str"),
            "as_of": pd.to_datetime(["2023-01-10"]).astype("datetime64[us]"),
            "recency_days": [5.0],
            "tenure_days": [9.0 - 9 / 24],
            "frequency": [1],
            "n_purchases": [3],
            "monetary_total": [55.0],
            "monetary_mean": [27.5],
        }
    )
    pd.testing.assert_frame_equal(got, expected)


@pytest.mark.parametrize("offset_us", [0, 1], ids=["at a purchase", "1us after it"])
def test_rfm_summary_one_cutoff_is_exact_to_the_microsecond(offset_us: int) -> None:
    """A single cutoff (a literal in the SQL) excludes a purchase at it and keeps one 1us before."""
    ts = pd.to_datetime(
        ["2023-01-02 10:00:00.000000", "2023-03-04 05:06:07.123456", "2023-03-04 09:00:00.000000"]
    ).astype("datetime64[us]")
    tx = pd.DataFrame({"customer_id": ["a", "a", "a"], "ts": ts, "amount": [10.0, 20.0, 40.0]})
    cutoff = ts[1] + pd.Timedelta(microseconds=offset_us)
    got = rfm_summary(tx, observation_period_end=cutoff)
    full = build_features(tx, as_of=cutoff)
    pd.testing.assert_frame_equal(got, full[list(got.columns)], check_exact=True)
    assert got["n_purchases"].tolist() == [1 + offset_us]
    assert got["as_of"].tolist() == [cutoff]


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        (["b", "a", "b", None], "str"),
        (["b", "a", "b", None], "object"),
        (["é", "z", "Z"], "str"),
        ([], "str"),
        ([None], "str"),
        (["x"], "object"),
        (["1", 2.5, None], "object"),
    ],
    ids=["dupes+missing", "object", "unicode", "empty", "all-missing", "one", "mixed"],
)
def test_small_category_conversion_equals_astype(values: list[object], dtype: str) -> None:
    """The direct category build of small static columns equals astype("category")."""
    s = pd.Series(values, dtype=dtype, name="plan")
    pd.testing.assert_series_equal(_build._as_category(s), s.astype("category"))


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("with_nat", [False, True], ids=["complete", "with NaT"])
def test_day_span_is_the_floored_day_numbers_of_the_extremes(unit: str, with_nat: bool) -> None:
    """day_span gives the first and last UTC day numbers, flooring before 1970, NaT skipped."""
    stamps = ["1969-12-31 23:59:59", "2021-06-30 12:00:00", *(["NaT"] if with_nat else [])]
    frame = pd.DataFrame({"ts": np.array(stamps, dtype=f"datetime64[{unit}]")})
    assert _engines.day_span(frame, 1) == (-1, 18808)
