"""Synthetic campaign evidence: randomized sends, true effects, effects in the transactions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnclv import load_policy
from churnclv._campaigns import campaign_outcomes, load_campaigns
from churnclv._generate import SyntheticData, generate, write
from churnclv._generate_campaigns import ACTIONS as SIMULATED
from churnclv._generate_campaigns import policy_actions
from churnclv.cli import main

ACTIONS = [a.name for a in load_policy().actions]
EFFECTS = [f"effect_{a}" for a in ACTIONS]


def test_the_simulated_actions_are_the_shipped_policy_s(tmp_path: Path) -> None:
    assert list(SIMULATED) == ACTIONS
    assert ACTIONS == ["email_reminder", "discount_coupon", "personal_call", "upgrade_offer"]
    path = tmp_path / "policy.yaml"
    path.write_text("actions:\n  - {name: email_reminder, cost: 0.5, uplift: 0.1}\n")
    assert policy_actions(load_policy(path)) == ("email_reminder",)
    path.write_text("actions:\n  - {name: sms, cost: 0.1, uplift: 0.1}\n")
    with pytest.raises(RuntimeError, match=r"policy action\(s\) sms have no simulated effect"):
        policy_actions(load_policy(path))


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
    others = ["effect_email_reminder", "effect_personal_call", "effect_upgrade_offer"]
    assert (truth[others] >= 0).all().all()
    # the harmed are the frequent buyers: their coupon spend would have come anyway
    harmed = data.truth.loc[data.truth["effect_discount_coupon"] < 0, "lambda"]
    helped = data.truth.loc[data.truth["effect_discount_coupon"] > 0, "lambda"]
    assert harmed.median() > 2 * helped.median()


def test_the_upgrade_grows_engaged_medium_and_low_spenders(data: SyntheticData) -> None:
    truth = data.truth
    upgrade = truth["effect_upgrade_offer"]
    assert (upgrade[truth["state"] == "D"] == 0).all()
    engaged, fading = upgrade[truth["state"] == "E"], upgrade[truth["state"] == "F"]
    assert engaged.mean() > 4 * fading.mean()
    assert (engaged > 3.0).mean() > 0.25  # worth its cost of 3 for many engaged customers
    # big spenders have little room to grow: the top 20% by value gain less than the rest
    top = truth["expected_value_365"].rank(ascending=False, pct=True) <= 0.2
    on = truth["state"] == "E"
    assert upgrade[on & top].mean() < 0.6 * upgrade[on & ~top].mean()
    # learnable: it rises with the engagement the events show
    events = data.events[data.events["ts"] < data.as_of].groupby("customer_id").size()
    seen = events.reindex(truth["customer_id"], fill_value=0).to_numpy()
    assert np.corrcoef(seen[on], upgrade[on])[0, 1] > 0.2


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
    assert uniform.campaign_truth[EFFECTS].iloc[0].tolist() == [2.0, 8.0, 16.0, 5.0]
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


def test_evaluate_campaign_intervals_cover_the_true_effects() -> None:
    """Acceptance 3 in small (the 20-seed figure: benchmarks/campaign_coverage.py)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "campaign_coverage.py"
    spec = importlib.util.spec_from_file_location("campaign_coverage", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    frame = pd.concat([bench.intervals(seed, 3_000) for seed in (0, 1)], ignore_index=True)
    assert len(frame) == 2 * (4 + 1) * len(ACTIONS)
    assert frame["covered"].mean() >= 0.85
    assert frame.loc[frame["scope"] == "all", "covered"].all()
