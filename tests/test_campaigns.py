"""The campaign log: loading, validation and outcomes in the response window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnclv import InputError, evaluate_campaign, load_policy
from churnclv._campaigns import (
    CampaignColumns,
    campaign_outcomes,
    has_control,
    load_campaigns,
    sends_in_window,
)

ACTIONS = [a.name for a in load_policy().actions]


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
        treatment=[" email_reminder", "control", "upgrade_offer", "control"],
    )
    got = load_campaigns(path, actions=ACTIONS)
    want = pd.DataFrame(
        {
            "customer_id": ["17850", "C", "A", "B"],
            "ts": _ts("2024-02-01 10:30", "2024-02-01 10:30", "2024-03-01", "2024-03-01"),
            "treatment": ["control", "upgrade_offer", "control", "email_reminder"],
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
    assert "email_reminder, discount_coupon, personal_call, upgrade_offer" in msg
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


# ---- evaluate_campaign ----------------------------------------------------------------------


def _sends(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    cid, ts, treatment, campaign = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "customer_id": list(cid),
            "ts": _ts(*ts),
            "treatment": list(treatment),
            "campaign_id": list(campaign),
        }
    )


def _welch(arm: list[float], base: list[float]) -> tuple[float, float, float, float]:
    from scipy import stats

    res = stats.ttest_ind(arm, base, equal_var=False)
    ci = res.confidence_interval(0.95)
    return float(np.mean(arm) - np.mean(base)), float(ci.low), float(ci.high), float(res.pvalue)


def test_evaluate_one_campaign_against_control() -> None:
    day = "2024-03-01"
    sends = _sends(
        [(c, day, "control", "c1") for c in "ABC"]
        + [(c, day, "email_reminder", "c1") for c in "DEF"]
        + [("G", day, "personal_call", "c1")]
    )
    tx = pd.DataFrame(
        {
            "customer_id": ["A", "B", "D", "E", "F", "F", "G", "A"],
            "ts": _ts(*["2024-03-05"] * 5, "2024-03-06", "2024-03-07", "2024-05-01"),
            "amount": [10.0, 20.0, 30.0, 40.0, 20.0, -5.0, 100.0, 7.0],
        }
    )
    got = evaluate_campaign(sends, tx, response_days=30)
    diff, lo, hi, p = _welch([30.0, 40.0, 15.0], [10.0, 20.0, 0.0])
    want = pd.DataFrame(
        {
            "campaign_id": ["c1"] * 3,
            "treatment": ["control", "email_reminder", "personal_call"],
            "customers": [3, 3, 1],
            "response_rate": [2 / 3, 1.0, 1.0],
            "mean_net_spend": [10.0, 85 / 3, 100.0],
            "difference": [np.nan, diff, 90.0],
            "ci_low": [np.nan, lo, np.nan],
            "ci_high": [np.nan, hi, np.nan],
            "p_value": [np.nan, p, np.nan],
            "incremental_revenue": [np.nan, 3 * diff, 90.0],
            "cost": [0.0, 1.5, 25.0],
            "roi": [np.nan, (3 * diff - 1.5) / 1.5, (90.0 - 25.0) / 25.0],
        }
    )
    pd.testing.assert_frame_equal(got, want)
    assert got.attrs == {"response_days": 30, "control": "control", "sends_outside_data": 0}


def test_evaluate_combines_campaigns_stratified() -> None:
    # campaign c1: control spends 0, coupon +10; c2 (later, richer): control 50, coupon 60.
    # Pooling would compare 3 coupon sends in c2 with 1 control send there: a biased +40.
    sends = _sends(
        [("A", "2024-01-01", "control", "c1"), ("B", "2024-01-01", "control", "c1")]
        + [("C", "2024-01-01", "discount_coupon", "c1")]
        + [("D", "2024-02-01", "control", "c2")]
        + [(c, "2024-02-01", "discount_coupon", "c2") for c in "EFG"]
    )
    tx = pd.DataFrame(
        {
            "customer_id": ["C", "D", "E", "F", "G", "Z"],
            "ts": _ts(*["2024-01-02"], *["2024-02-02"] * 4, "2024-06-01"),
            "amount": [10.0, 50.0, 60.0, 60.0, 60.0, 1.0],
        }
    )
    got = evaluate_campaign(sends, tx, response_days=30).set_index(["campaign_id", "treatment"])
    assert got.index.tolist() == [
        ("c1", "control"),
        ("c1", "discount_coupon"),
        ("c2", "control"),
        ("c2", "discount_coupon"),
        ("all", "control"),
        ("all", "discount_coupon"),
    ]
    combined = got.loc[("all", "discount_coupon")]
    assert combined["difference"] == pytest.approx(10.0)
    assert combined["customers"] == 4
    assert combined["incremental_revenue"] == pytest.approx(40.0)
    assert combined["cost"] == 20.0
    assert combined["mean_net_spend"] == pytest.approx(47.5)


def test_evaluate_without_control_says_why() -> None:
    sends = _sends([("A", "2024-01-01", "email_reminder", "c1")])
    tx = pd.DataFrame({"customer_id": ["A"], "ts": _ts("2024-03-01"), "amount": [1.0]})
    with pytest.raises(InputError, match="cannot be estimated without a comparison group"):
        evaluate_campaign(sends, tx, response_days=30)


def test_evaluate_leaves_out_windows_beyond_the_data() -> None:
    sends = _sends(
        [
            ("A", "2024-01-01", "control", "c1"),
            ("B", "2024-01-01", "email_reminder", "c1"),
            ("A", "2024-03-01", "control", "c2"),
            ("B", "2024-03-01", "email_reminder", "c2"),
        ]
    )
    tx = pd.DataFrame({"customer_id": ["B"], "ts": _ts("2024-03-05"), "amount": [4.0]})
    got = evaluate_campaign(sends, tx, response_days=30)
    assert got["campaign_id"].unique().tolist() == ["c1"]
    assert got.attrs["sends_outside_data"] == 2
    with pytest.raises(InputError, match="no send has its 90-day response window"):
        evaluate_campaign(sends, tx, response_days=90)


# ---- churnclv evaluate-campaign ------------------------------------------------------------


def _cli_inputs(tmp_path: Path, treatments: list[str]) -> tuple[Path, Path]:
    n = len(treatments)
    ids = [f"K{i}" for i in range(n)]
    log = _log(
        tmp_path / "log.csv",
        customer_id=ids,
        ts=["2024-03-01"] * n,
        treatment=treatments,
    )
    tx = tmp_path / "tx.csv"
    pd.DataFrame(
        {
            "customer_id": [*ids, "late"],
            "ts": ["2024-03-10"] * n + ["2024-06-01"],
            "amount": [float(i % 3) * 10 for i in range(n)] + [1.0],
        }
    ).to_csv(tx, index=False)
    return log, tx


def _evaluate(log: Path, tx: Path, *extra: str) -> int:
    from churnclv.cli import main

    argv = ["evaluate-campaign", "--campaigns", str(log), "--transactions", str(tx)]
    return main([*argv, "--response-days", "30", *extra])


def test_cli_evaluates_writes_json_and_logs_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], demo_workdir: Path
) -> None:
    """The run goes to the work directory's store (the session's, whose schema exists)."""
    import json

    from mlflow import MlflowClient

    arms = ["control", "email_reminder", "discount_coupon", "upgrade_offer"] * 3
    log, tx = _cli_inputs(tmp_path, arms)
    out, work = tmp_path / "eval.json", demo_workdir
    assert _evaluate(log, tx, "--out", str(out), "--workdir", str(work)) == 0
    printed = capsys.readouterr().out
    assert "Campaign evaluation against the control arm" in printed
    assert "discount_coupon" in printed and "95% CI" in printed
    doc = json.loads(out.read_text())
    assert doc["response_days"] == 30 and doc["control"] == "control"
    treatments = [r["treatment"] for r in doc["rows"]]
    assert treatments == ["control", "email_reminder", "discount_coupon", "upgrade_offer"]
    assert doc["rows"][3]["cost"] == 3 * 3.0  # the policy's cost of the growth action
    assert set(doc["rows"][1]) == {
        "campaign_id",
        "treatment",
        "customers",
        "response_rate",
        "mean_net_spend",
        "difference",
        "ci_low",
        "ci_high",
        "p_value",
        "incremental_revenue",
        "cost",
        "roi",
    }
    assert doc["rows"][0]["difference"] is None
    client = MlflowClient(f"sqlite:///{work / 'mlruns.db'}")
    exp = client.get_experiment_by_name("churnclv-campaigns")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], filter_string=f"params.campaigns_file = '{log}'")
    (run,) = runs
    assert run.info.run_name == "evaluate-campaign 2024-03-01"
    assert run.info.status == "FINISHED"
    assert "discount_coupon_difference" in run.data.metrics


@pytest.mark.parametrize(
    ("treatments", "extra", "message"),
    [
        (["control", "sms", "sms"], [], "treatment 'sms' (2 rows) is neither the control arm"),
        (
            ["email_reminder", "email_reminder", "discount_coupon"],
            [],
            "cannot be estimated without a comparison group",
        ),
        (["holdout", "email_reminder"], [], "name the control arm with --control"),
        (["control", "email_reminder"], ["--response-days", "0"], "Invalid value"),
    ],
)
def test_cli_bad_logs_exit_2_without_output(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    treatments: list[str],
    extra: list[str],
    message: str,
) -> None:
    log, tx = _cli_inputs(tmp_path, treatments)
    out = tmp_path / "eval.csv"
    argv = ["--out", str(out), "--workdir", str(tmp_path / "work"), *extra]
    assert _evaluate(log, tx, *argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err.replace("\n", " ")
    assert "Traceback" not in captured.err
    assert not out.exists() and not (tmp_path / "work").exists()


def test_cli_without_control_prints_the_response_rates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, tx = _cli_inputs(tmp_path, ["email_reminder", "discount_coupon", "email_reminder"])
    assert _evaluate(log, tx, "--workdir", str(tmp_path / "work")) == 2
    captured = capsys.readouterr()
    assert "Response per arm" in captured.out and "email_reminder" in captured.out
    assert "effects cannot be estimated without a comparison group" in captured.err


def test_cli_empty_log_and_bad_out_suffix_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, tx = _cli_inputs(tmp_path, ["control", "email_reminder"])
    empty = tmp_path / "empty.csv"
    empty.write_text("customer_id,ts,treatment\n")
    out = tmp_path / "eval.json"
    assert _evaluate(empty, tx, "--out", str(out)) == 2
    assert "campaigns file is empty (no data rows)" in capsys.readouterr().err
    assert _evaluate(log, tx, "--out", str(tmp_path / "eval.xlsx")) == 2
    assert "unsupported file type '.xlsx'" in capsys.readouterr().err
    assert not out.exists()


def test_evaluate_campaign_verb_documents_every_flag() -> None:
    import typer

    from churnclv.cli import app

    cmd = typer.main.get_command(app).commands["evaluate-campaign"]  # type: ignore[attr-defined]
    assert cmd.help and "control arm" in cmd.help
    for param in cmd.params:
        if isinstance(param, typer.core.TyperOption):
            assert param.help, f"evaluate-campaign {param.opts} has no help"
