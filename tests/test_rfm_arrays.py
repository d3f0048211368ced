"""rfm_summary's array path (in-memory frames) equals the RFM SQL on every row layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnclv._generate import SyntheticData, generate
from churnclv.features import _build, rfm_summary
from churnclv.features._rfm_arrays import _sorted_runs, rfm_frame


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate(150, seed=11)


def _sql(tx: pd.DataFrame, cutoffs: object, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    with monkeypatch.context() as patch:
        patch.setattr(_build, "rfm_frame", lambda *args: None)
        return rfm_summary(tx, observation_period_end=cutoffs)


def _layouts(tx: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The same rows sorted by id and time, by id alone, by time, shuffled, chunked."""
    by_id = tx.sort_values(["customer_id", "ts"], kind="stable").reset_index(drop=True)
    reversed_within = by_id.sort_values(
        ["customer_id", "ts"], ascending=[True, False], kind="stable"
    ).reset_index(drop=True)
    halves = [by_id.iloc[: len(by_id) // 2], by_id.iloc[len(by_id) // 2 :]]
    return {
        "by-id-and-time": by_id,
        "by-id-not-time": reversed_within,
        "by-time": tx.sort_values("ts", kind="stable").reset_index(drop=True),
        "shuffled": tx.sample(frac=1, random_state=3).reset_index(drop=True),
        "chunked": pd.concat(halves, ignore_index=True),
    }


@pytest.mark.parametrize("n_cutoffs", [1, 3])
def test_arrays_equal_the_sql_on_every_layout(
    data: SyntheticData, monkeypatch: pytest.MonkeyPatch, n_cutoffs: int
) -> None:
    """Sorted, unsorted, shuffled and chunked frames give the SQL's rows, at 1 and 3 cutoffs."""
    tx = data.transactions[["customer_id", "ts", "amount"]]
    cutoffs = [data.as_of - pd.Timedelta(days=d, hours=5) for d in (300, 120, 0)][-n_cutoffs:]
    want = _sql(tx, cutoffs, monkeypatch)
    assert len(want) > 100
    for name, frame in _layouts(tx).items():
        sorted_ids = name.startswith("by-id") or name == "chunked"
        assert (_sorted_runs(frame["customer_id"]) is not None) == sorted_ids, name
        got = rfm_frame(frame, pd.Series(pd.to_datetime(cutoffs)).astype("datetime64[us]"))
        assert got is not None, name
        pd.testing.assert_frame_equal(got, want, check_exact=False, atol=1e-9, rtol=0, obj=name)
        assert (got[["recency_days", "tenure_days"]] == want[["recency_days", "tenure_days"]]).all(
            axis=None
        ), name


def test_integer_ids_missing_times_and_day_edges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Integer ids, a missing timestamp, purchases 1us either side of midnight, a returns-only
    customer and a same-day repeat: the SQL's values, exactly."""
    ts = pd.to_datetime(
        [
            "2023-01-01 23:59:59.999999",
            "2023-01-02 00:00:00.000000",
            "2023-01-02 08:00:00.000000",
            "2023-01-05 00:00:00.000000",
            "2023-01-03 00:00:00.000000",
            None,
            "2023-01-04 00:00:00.000000",
        ]
    ).astype("datetime64[us]")
    tx = pd.DataFrame(
        {
            "customer_id": np.array([7, 7, 7, 7, 9, 9, 12], dtype=np.int64),
            "ts": ts,
            "amount": [5.0, 6.0, 7.0, -2.0, -3.0, 4.0, 8.0],
        }
    )
    for frame in (tx, tx.iloc[::-1].reset_index(drop=True)):
        got = rfm_frame(frame, pd.Series(pd.to_datetime(["2023-01-10"])).astype("datetime64[us]"))
        want = _sql(frame, "2023-01-10", monkeypatch)
        assert got is not None
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        assert got["customer_id"].tolist() == [7, 12]
        assert got["frequency"].tolist() == [1, 0]  # 3 purchases on 2 days; 1 on 1


@pytest.mark.parametrize(
    "change",
    ["object-ids", "nanosecond-ts", "missing-id", "nan-amount", "integer-amount", "empty"],
)
def test_other_dtypes_go_to_the_sql(
    data: SyntheticData, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Frames outside the canonical dtypes are left to the SQL, which gives the same answer."""
    tx = data.transactions[["customer_id", "ts", "amount"]].head(400).copy()
    if change == "object-ids":
        tx["customer_id"] = tx["customer_id"].astype(object)
    elif change == "nanosecond-ts":
        tx["ts"] = tx["ts"].astype("datetime64[ns]")
    elif change == "missing-id":
        tx.loc[tx.index[3], "customer_id"] = None
    elif change == "nan-amount":
        tx.loc[tx.index[3], "amount"] = np.nan
    elif change == "integer-amount":
        tx["amount"] = tx["amount"].round().astype(np.int64)
    else:
        tx = tx.iloc[:0]
    cut = pd.Series([data.as_of]).astype("datetime64[us]")
    assert rfm_frame(tx, cut) is None
    if change != "empty":
        got = rfm_summary(tx, observation_period_end=data.as_of)
        pd.testing.assert_frame_equal(got, _sql(tx, data.as_of, monkeypatch))
