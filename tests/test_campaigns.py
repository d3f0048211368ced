"""The campaign log: loading, validation and outcomes in the response window."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from churnclv import InputError
from churnclv._campaigns import (
    CampaignColumns,
    campaign_outcomes,
    has_control,
    load_campaigns,
    sends_in_window,
)

ACTIONS = ["email_reminder", "discount_coupon", "personal_call"]


def _ts(*values: str) -> pd.DatetimeIndex:
    return pd.to_datetime(list(values), format="ISO8601").astype("datetime64[us]")


def _log(path: Path, **cols: list[object]) -> Path:
    pd.DataFrame(cols).to_csv(path, index=False)
    return path


def test_load_csv_sorted_with_campaign_from_send_date(tmp_path: Path) -> None:
    path = _log(
        tmp_path / "log.csv",
        customer_id=["B", "A", "C", "17850"],
        ts=["2024-03-01", "2024-03-01", "2024-02-01 10:30", "2024-02-01 10:30"],
        treatment=[" email_reminder", "control", "personal_call", "control"],
    )
    got = load_campaigns(path, actions=ACTIONS)
    want = pd.DataFrame(
        {
            "customer_id": ["17850", "C", "A", "B"],
            "ts": _ts("2024-02-01 10:30", "2024-02-01 10:30", "2024-03-01", "2024-03-01"),
            "treatment": ["control", "personal_call", "control", "email_reminder"],
            "campaign_id": ["2024-02-01", "2024-02-01", "2024-03-01", "2024-03-01"],
        }
    )
    pd.testing.assert_frame_equal(got, want)


def test_load_parquet_with_mapped_columns_and_campaign_ids(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pd.DataFrame(
        {
            "cust": ["A", "B"],
            "sent": pd.to_datetime(["2024-03-01", "2024-03-02"]),
            "arm": ["holdout", "discount_coupon"],
            "wave": ["spring", None],
        }
    ).to_parquet(path)
    columns = CampaignColumns(customer_id="cust", ts="sent", treatment="arm", campaign_id="wave")
    got = load_campaigns(path, columns=columns, control="holdout", actions=ACTIONS)
    want = pd.DataFrame(
        {
            "customer_id": ["A", "B"],
            "ts": _ts("2024-03-01", "2024-03-02"),
            "treatment": ["holdout", "discount_coupon"],
            "campaign_id": ["spring", "2024-03-02"],
        }
    )
    pd.testing.assert_frame_equal(got, want)
    assert has_control(got, "holdout") and not has_control(got, "control")


def test_unknown_treatments_are_named(tmp_path: Path) -> None:
    path = _log(
        tmp_path / "log.csv",
        customer_id=["A", "B", "C", "D"],
        ts=["2024-03-01"] * 4,
        treatment=["control", "sms", "sms", "Holdout"],
    )
    with pytest.raises(InputError) as err:
        load_campaigns(path, actions=ACTIONS)
    msg = str(err.value)
    assert "'Holdout' (1 row), 'sms' (2 rows) are neither the control arm 'control'" in msg
    assert "email_reminder, discount_coupon, personal_call" in msg
    assert str(path) in msg


def test_log_without_control_is_loaded(tmp_path: Path) -> None:
    path = _log(tmp_path / "log.csv", customer_id=["A"], ts=["2024-03-01"], treatment=["sms"])
    got = load_campaigns(path, actions=["sms"])
    assert not has_control(got)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "campaigns file is empty"),
        ("customer_id,ts,treatment\n", "no data rows"),
        ("customer_id,ts,arm\nA,2024-03-01,control\n", "missing required column 'treatment'"),
        ("customer_id,ts,treatment\nA,soon,control\n", "unparseable or missing timestamps"),
        ("customer_id,ts,treatment\nA,2024-03-01,\n", "'treatment' has 1 empty values"),
    ],
)
def test_bad_logs_raise(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "log.csv"
    path.write_text(content)
    with pytest.raises(InputError, match=match):
        load_campaigns(path, actions=ACTIONS)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="campaigns file not found"):
        load_campaigns(tmp_path / "none.csv", actions=ACTIONS)


def test_one_customer_in_two_arms_of_a_send_raises(tmp_path: Path) -> None:
    path = _log(
        tmp_path / "log.csv",
        customer_id=["A", "A"],
        ts=["2024-03-01", "2024-03-01"],
        treatment=["control", "email_reminder"],
    )
    with pytest.raises(InputError, match="one customer in two arms"):
        load_campaigns(path, actions=ACTIONS)


def test_outcome_window_is_open_at_send_and_closed_at_end() -> None:
    sends = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D"],
            "ts": _ts("2024-03-01", "2024-03-01", "2024-03-01", "2024-03-01"),
            "treatment": ["control", "email_reminder", "discount_coupon", "control"],
            "campaign_id": ["c1"] * 4,
        }
    )
    tx = pd.DataFrame(
        {
            "customer_id": ["A", "A", "A", "B", "B", "C", "C", "X"],
            "ts": _ts(
                "2024-03-01",  # at the send: excluded
                "2024-03-31",  # send + 30 days: included
                "2024-03-31 00:00:01",  # just after the window: excluded
                "2024-03-02",
                "2024-03-10",  # a return reduces net spend
                "2024-03-05",  # a return only: no response
                "2024-02-20",  # before the send: excluded
                "2024-03-05",  # no send
            ),
            "amount": [100.0, 10.0, 7.0, 40.0, -15.5, -3.0, 9.0, 1.0],
        }
    )
    got = campaign_outcomes(sends, tx, response_days=30)
    want = sends.assign(net_spend=[10.0, 24.5, -3.0, 0.0], responded=[True, True, False, False])
    pd.testing.assert_frame_equal(got, want)


def test_outcomes_keep_the_log_order_and_index() -> None:
    sends = pd.DataFrame(
        {
            "customer_id": ["B", "A"],
            "ts": _ts("2024-03-02", "2024-03-01"),
            "treatment": ["control", "control"],
            "campaign_id": ["c", "c"],
        },
        index=[5, 9],
    )
    tx = pd.DataFrame({"customer_id": ["A"], "ts": _ts("2024-03-03"), "amount": [2.0]})
    got = campaign_outcomes(sends, tx, response_days=7)
    assert got["customer_id"].tolist() == ["B", "A"]
    assert got["net_spend"].tolist() == [0.0, 2.0]
    assert got.index.tolist() == [0, 1]


def test_outcomes_reject_non_positive_window() -> None:
    sends = pd.DataFrame({"customer_id": ["A"], "ts": _ts("2024-03-01")})
    tx = pd.DataFrame({"customer_id": ["A"], "ts": _ts("2024-03-03"), "amount": [2.0]})
    with pytest.raises(InputError, match="response_days must be positive"):
        campaign_outcomes(sends, tx, response_days=0)


def test_sends_in_window_drops_open_windows() -> None:
    log = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C"],
            "ts": _ts("2024-01-01", "2024-01-02", "2024-01-02 00:00:01"),
            "treatment": ["control"] * 3,
            "campaign_id": ["c"] * 3,
        }
    )
    kept, dropped = sends_in_window(log, as_of="2024-02-01", response_days=30)
    pd.testing.assert_frame_equal(kept, log.iloc[:2])
    assert dropped == 1
