"""Synthetic campaign evidence: randomized sends, true effects, effects in the transactions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnclv._campaigns import campaign_outcomes, load_campaigns
from churnclv._generate import SyntheticData, generate, write
from churnclv.cli import main

ACTIONS = ["email_reminder", "discount_coupon", "personal_call"]
EFFECTS = [f"effect_{a}" for a in ACTIONS]


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate(6_000, seed=11, history_days=700, future_days=30)


def test_log_has_the_loaded_schema_and_randomized_arms(tmp_path: Path, data: SyntheticData) -> None:
    log = data.campaigns
    assert log is not None and data.campaign_truth is not None
    paths = write(data, tmp_path)
    back = load_campaigns(paths["campaigns"], actions=ACTIONS)
    pd.testing.assert_frame_equal(back, log)
    assert log["campaign_id"].nunique() == 4
    for _, sends in log.groupby("campaign_id"):
        assert set(sends["treatment"]) == {"control", *ACTIONS}
        assert sends["customer_id"].is_unique
    first = data.transactions.groupby("customer_id")["ts"].min()
    assert (first.loc[log["customer_id"]].to_numpy() < log["ts"].to_numpy()).all()
    assert (log["ts"] + pd.Timedelta(days=30) < data.as_of).all()
    truth = data.campaign_truth
    pd.testing.assert_frame_equal(truth[["customer_id", "ts", "treatment"]], log.iloc[:, :3])
    assert list(truth.columns) == ["campaign_id", "customer_id", "ts", "treatment", *EFFECTS]


def test_effects_are_heterogeneous_and_the_coupon_hurts_some(data: SyntheticData) -> None:
    truth = data.campaign_truth
    assert truth is not None
    for col in EFFECTS:
        assert truth[col].std() > 1.0
        assert data.truth[col].std() > 1.0
    coupon = truth["effect_discount_coupon"]
    assert 0.03 < (coupon < 0).mean() < 0.5
    assert (coupon > 0).mean() > 0.1
    assert (truth[["effect_email_reminder", "effect_personal_call"]] >= 0).all().all()
    # the harmed are the frequent buyers: their coupon spend would have come anyway
    harmed = data.truth.loc[data.truth["effect_discount_coupon"] < 0, "lambda"]
    helped = data.truth.loc[data.truth["effect_discount_coupon"] > 0, "lambda"]
    assert harmed.median() > 2 * helped.median()


def test_arm_minus_control_recovers_the_mean_true_effect(data: SyntheticData) -> None:
    """Per campaign, the realised difference of means is within 4 standard errors."""
    assert data.campaigns is not None and data.campaign_truth is not None
    sends = campaign_outcomes(data.campaigns, data.transactions, response_days=30)
    sends[EFFECTS] = data.campaign_truth[EFFECTS].to_numpy()
    z = []
    for _, camp in sends.groupby("campaign_id"):
        control = camp.loc[camp["treatment"] == "control", "net_spend"]
        for action in ACTIONS:
            arm = camp[camp["treatment"] == action]
            diff = arm["net_spend"].mean() - control.mean()
            se = np.sqrt(arm["net_spend"].var() / len(arm) + control.var() / len(control))
            z.append((diff - arm[f"effect_{action}"].mean()) / se)
    assert np.max(np.abs(z)) < 4.0, z
    assert abs(np.mean(z)) < 1.0


def test_uniform_and_no_effects() -> None:
    uniform = generate(800, seed=2, history_days=400, future_days=0, uplift="uniform")
    none = generate(800, seed=2, history_days=400, future_days=0, uplift="none")
    plain = generate(800, seed=2, history_days=400, future_days=0, campaigns=False)
    assert uniform.campaign_truth is not None and none.campaign_truth is not None
    for col in EFFECTS:
        assert uniform.campaign_truth[col].nunique() == 1
        assert uniform.truth[col].nunique() == 1
        assert (none.campaign_truth[col] == 0).all() and (none.truth[col] == 0).all()
    assert uniform.campaign_truth[EFFECTS].iloc[0].tolist() == [2.0, 8.0, 16.0]
    # without effects the sends change nothing: the transactions are those without campaigns
    pd.testing.assert_frame_equal(none.transactions, plain.transactions)
    assert len(uniform.transactions) > len(plain.transactions)
    pd.testing.assert_frame_equal(none.campaigns, uniform.campaigns)
    assert plain.campaigns is None and plain.campaign_truth is None


def test_campaigns_leave_the_other_outputs_alone() -> None:
    on = generate(500, seed=4, history_days=300, future_days=60)
    off = generate(500, seed=4, history_days=300, future_days=60, campaigns=False)
    pd.testing.assert_frame_equal(on.events, off.events)
    pd.testing.assert_frame_equal(on.customers, off.customers)
    kept = [c for c in off.truth.columns if not c.startswith(("effect_", "actual_value"))]
    pd.testing.assert_frame_equal(on.truth[kept], off.truth[kept])
    assert on.campaigns is not None
    again = generate(500, seed=4, history_days=300, future_days=60)
    pd.testing.assert_frame_equal(again.transactions, on.transactions)
    pd.testing.assert_frame_equal(again.campaigns, on.campaigns)


def test_bad_uplift_raises() -> None:
    with pytest.raises(ValueError, match="uplift must be one of"):
        generate(10, uplift="random")


def test_cli_generate_writes_the_campaigns(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "gen"
    argv = ["generate", "--customers", "300", "--seed", "1", "--uplift", "none", "--out", str(out)]
    assert main(argv) == 0
    truth = pd.read_parquet(out / "campaign_truth.parquet")
    assert (truth[EFFECTS] == 0).all().all()
    assert (out / "campaigns.parquet").is_file()
    assert main(["generate", "--customers", "10", "--uplift", "big", "--out", str(out)]) == 2
    assert "--uplift 'big' is not one of" in capsys.readouterr().err
