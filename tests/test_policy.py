"""Policy extensions: partial files, growth actions, targeting by grade, the randomized holdout."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnclv import InputError
from churnclv.decisions import (
    Action,
    Policy,
    choose_action,
    decide,
    eligible,
    holdout_mask,
    load_policy,
)

GROWTH = Policy(
    holdout_share=0.0,
    actions=(
        Action("call", 20.0, 0.3),
        Action(
            "upsell",
            2.0,
            goal="growth",
            value_lift=0.1,
            tiers=("medium", "low"),
            stages=("active",),
        ),
    ),
)


def _frame() -> pd.DataFrame:
    """Five customers; value tiers by rank (shares 0.2 / 0.3): A high, B medium, C-E low."""
    return pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D", "E"],
            "churn_probability": [0.9, 0.1, 0.1, 0.5, 0.2],
            "predicted_value": [1000.0, 200.0, 100.0, 150.0, 50.0],
            "recency_days": [5.0, 5.0, 45.0, 5.0, 5.0],  # C is silent (> 2 x its 20-day gap)
            "tenure_days": [300.0] * 5,
            "gap_mean_days": [20.0] * 5,
            "frequency": [10, 3, 6, 4, 1],
            "monetary_total": [5000.0, 100.0, 300.0, 200.0, 50.0],
            "r_score": [3] * 5,
            "f_score": [3] * 5,
            "m_score": [3] * 5,
        }
    )


DECISIONS = [
    "value_tier",
    "lifecycle_stage",
    "action",
    "expected_net_gain",
    "action_cost",
    "expected_saved_value",
    "potential_high_value",
    "holdout",
    "action_basis",
]


def test_growth_and_retention_gains_follow_their_formulas() -> None:
    """Retention: P x value x uplift - cost; growth: (1 - P) x value x value_lift - cost, offered
    only to its tiers and stages; the best positive gain wins."""
    out = decide(_frame(), GROWTH, churn_horizon_days=90)
    want = pd.DataFrame(
        {
            "value_tier": ["high", "medium", "low", "low", "low"],
            "lifecycle_stage": ["active", "active", "silent", "active", "active"],
            # A: call 0.9*1000*0.3-20 (upsell not for high); B: upsell 0.9*200*0.1-2;
            # C: silent, so no upsell, call -17; D: upsell 5.5 beats call 2.5; E: upsell 2
            "action": ["call", "upsell", "none", "upsell", "upsell"],
            "expected_net_gain": [250.0, 16.0, 0.0, 5.5, 2.0],
            "action_cost": [20.0, 2.0, 0.0, 2.0, 2.0],
            "expected_saved_value": [270.0, 18.0, 0.0, 7.5, 4.0],
            # past-spend tiers: A high, C medium, D, B, E low; B's predicted tier is medium
            "potential_high_value": [False, True, False, False, False],
            "holdout": [False] * 5,
            "action_basis": ["policy"] * 5,
        }
    )
    pd.testing.assert_frame_equal(out[DECISIONS], want, check_dtype=False)


def test_holdout_customers_get_none() -> None:
    """With holdout_share 1 every customer is held out: action none, no gain, no cost."""
    policy = Policy(actions=GROWTH.actions, holdout_share=1.0)
    out = decide(_frame(), policy, churn_horizon_days=90)
    assert out["action"].tolist() == ["none"] * 5
    assert out["holdout"].tolist() == [True] * 5
    assert out[["expected_net_gain", "action_cost", "expected_saved_value"]].eq(0).all().all()


def test_potential_high_value_against_the_reference() -> None:
    """With a reference population, past-spend tiers cut at the reference's spend quantiles."""
    reference = {
        "recency_days": list(np.linspace(1, 100, 101)),
        "frequency": list(np.linspace(0, 20, 101)),
        "monetary_total": list(np.linspace(0, 1000, 101)),  # high >= 800, medium >= 500
        "predicted_value": list(np.linspace(0, 100, 101)),  # high >= 80, medium >= 50
    }
    rows = _frame().drop(columns=["r_score", "f_score", "m_score"]).head(4)
    rows["predicted_value"] = [90.0, 60.0, 90.0, 10.0]
    rows["monetary_total"] = [900.0, 100.0, 600.0, 0.0]
    out = decide(rows, GROWTH, churn_horizon_days=90, reference=reference)
    assert out["value_tier"].tolist() == ["high", "medium", "high", "low"]
    assert out["potential_high_value"].tolist() == [False, True, True, False]


def test_eligible_by_segments_tiers_and_stages() -> None:
    """A customer gets an action only when it matches every restriction; unknown values
    (None) admit only unrestricted actions."""
    policy = Policy(
        actions=(
            Action("all", 1.0, 0.1),
            Action("vip", 1.0, 0.1, tiers=("high",), segments=("champions", "loyal")),
            Action("wake", 1.0, 0.1, stages=("silent", "churned")),
        )
    )
    got = eligible(
        policy,
        ["champions", "loyal", "lost", "at_risk"],
        ["high", "medium", "high", None],
        ["active", "silent", "churned", "silent"],
    )
    want = [[True, True, False], [True, False, True], [True, False, True], [True, False, True]]
    assert got.tolist() == want
    assert eligible(policy, None, None, None, n=2).tolist() == [[True, False, False]] * 2


def test_choose_action_takes_the_best_positive_eligible_gain() -> None:
    """Ties go to the first action; NaN and non-positive gains never win; holdout is none."""
    gain = np.array([[3.0, 3.0], [np.nan, 1.0], [0.0, -1.0], [5.0, 9.0], [5.0, 9.0]])
    ok = np.array([[True, True], [True, True], [True, True], [True, False], [True, True]])
    held = np.array([False, False, False, False, True])
    names, best = choose_action(gain, ok, held, ["a", "b"])
    assert names.tolist() == ["a", "b", "none", "a", "none"]
    assert best.tolist() == [3.0, 1.0, 0.0, 5.0, 0.0]
    names, best = choose_action(np.zeros((2, 0)), np.zeros((2, 0), bool), None, [])
    assert names.tolist() == ["none", "none"] and best.tolist() == [0.0, 0.0]


IDS = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=50, unique=True)
DAYS = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2100, 1, 1))


@settings(max_examples=10, deadline=None)
@given(share=st.floats(0.02, 0.5), day=DAYS, prefix=st.text(max_size=5))
def test_holdout_share_is_close_to_the_policy_share(
    share: float, day: dt.date, prefix: str
) -> None:
    """On 3,000 ids the held-out share is within 5 binomial standard errors of the share."""
    ids = [f"{prefix}{i}" for i in range(3000)]
    got = holdout_mask(ids, day, share).mean()
    assert abs(got - share) <= 5 * np.sqrt(share * (1 - share) / len(ids))


@settings(max_examples=30, deadline=None)
@given(ids=IDS, day=DAYS, share=st.floats(0, 1))
def test_holdout_is_reproducible_per_customer(ids: list[str], day: dt.date, share: float) -> None:
    """The same ids and as_of day give the same mask, whatever the batch, order or date type."""
    mask = holdout_mask(ids, day, share)
    assert holdout_mask(ids, pd.Timestamp(day).isoformat(), share).tolist() == mask.tolist()
    noon = pd.Timestamp(day) + pd.Timedelta(hours=12)
    rows = np.array([noon] * len(ids), dtype="datetime64[us]")
    assert holdout_mask(ids, rows, share).tolist() == mask.tolist()
    back = holdout_mask(ids[::-1], day, share)
    assert back.tolist() == mask[::-1].tolist()
    assert [bool(holdout_mask([c], day, share)[0]) for c in ids] == mask.tolist()


@settings(max_examples=10, deadline=None)
@given(day=DAYS, days_later=st.integers(1, 3650))
def test_another_as_of_draws_another_holdout(day: dt.date, days_later: int) -> None:
    """A different as_of day draws a different, independent holdout."""
    ids = [f"C{i:06d}" for i in range(2000)]
    first = holdout_mask(ids, day, 0.1)
    second = holdout_mask(ids, day + dt.timedelta(days=days_later), 0.1)
    assert (first != second).any()
    assert (first & second).mean() < 0.03  # about 0.1 x 0.1 when independent


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_partial_policy_takes_the_rest_from_the_default(tmp_path: Path) -> None:
    """A file with only actions and holdout_share keeps every other default; a section merges
    key by key; an empty file is the default."""
    default = load_policy()
    path = _write(
        tmp_path,
        "actions:\n  - {name: sms, cost: 0.1, uplift: 0.01, tiers: [low]}\n"
        "holdout_share: 0.2\nrisk_band: {high: 0.7}\n",
    )
    pol = load_policy(path)
    assert pol.actions == (Action("sms", 0.1, 0.01, tiers=("low",)),)
    assert pol.holdout_share == 0.2
    assert (pol.risk_high, pol.risk_medium) == (0.7, default.risk_medium)
    assert (pol.high_share, pol.medium_share) == (default.high_share, default.medium_share)
    assert pol.monitoring == default.monitoring
    assert load_policy(_write(tmp_path, "# nothing changed\n")) == default


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("holdout_share: 1.5\n", r"'holdout_share' = 1.5 must be within \[0, 1\]"),
        ("holdout_share: lots\n", "'holdout_share' must be a number"),
        ("risk_band: {hihg: 0.7}\n", r"unknown key 'risk_band.hihg' \(known: high, medium\)"),
        ("risk_band: 0.7\n", "'risk_band' must be a mapping"),
        ("risk_band: {medium: 0.65}\n", "'risk_band.medium' .* must be below"),
        ("actions: {name: a}\n", "'actions' must be a list"),
        ("actions:\n  - {name: a, cost: 1, uplift: 0.1, tiers: [top]}\n", "'top' in 'actions"),
        ("actions:\n  - {name: a, cost: 1, uplift: 0.1, stages: []}\n", "stages' must be a non"),
        ("actions:\n  - {name: a, cost: 1, uplift: 0.1, stages: [asleep]}\n", "new, active"),
        ("actions:\n  - {name: a, cost: 1, goal: growth}\n", "needs the key value_lift"),
        ("actions:\n  - {name: a, cost: 1, goal: grow, uplift: 0.1}\n", "retention, growth"),
        ("actions:\n  - {name: a, cost: 1, value_lift: 0.1}\n", "needs the key uplift"),
        ("actions:\n  - {name: a, cost: 1, goal: growth, value_lift: 1, uplift: 0.1}\n", "uplift"),
        ("actions:\n  - {name: a, cost: 1, goal: growth, value_lift: x}\n", "value_lift' must"),
        ("actions:\n  - {name: a, cost: 1, uplift: 0.1, colour: red}\n", "'actions\\[0\\].colour"),
        ("holdout: 0.1\n", "unknown key 'holdout'"),
    ],
)
def test_invalid_partial_policy_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    """Errors in a partial file name the key, the name and what is allowed."""
    with pytest.raises(InputError, match=message):
        load_policy(_write(tmp_path, text))


def test_bad_policy_exits_2_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`churnclv score --policy BAD` stops with one clear line and exit 2, writing nothing."""
    from churnclv.cli import main

    tx = tmp_path / "tx.csv"
    tx.write_text("customer_id,ts,amount\nc1,2024-01-05,10.0\n")
    out = tmp_path / "scores.parquet"
    policy = _write(tmp_path, "actions:\n  - {name: a, cost: 1, uplift: 0.1, tiers: [top]}\n")
    args = ["score", "--transactions", str(tx), "--as-of", "2024-03-01", "--out", str(out)]
    code = main([*args, "--policy", str(policy), "--workdir", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown name 'top' in 'actions[0].tiers'" in err and "Traceback" not in err
    assert not out.exists()


def test_default_growth_action_targets_medium_and_low_tiers() -> None:
    """The shipped policy has a growth action for medium/low, new/active customers."""
    pol = load_policy()
    growth = [a for a in pol.actions if a.goal == "growth"]
    assert [a.name for a in growth] == ["upgrade_offer"]
    assert growth[0].tiers == ("medium", "low") and growth[0].stages == ("new", "active")
    assert growth[0].value_lift > 0 and pol.holdout_share == 0.1


def test_response_models_document_the_new_fields() -> None:
    """/predict and /lookup answers describe potential_high_value, holdout and action_basis."""
    from churnclv.serving._responses import Prediction, SnapshotRow

    for model in (Prediction, SnapshotRow):
        props = model.model_json_schema()["properties"]
        for field in ("potential_high_value", "holdout", "action_basis"):
            assert props[field].get("description"), (model.__name__, field)
    assert {"potential_high_value", "holdout", "action_basis"} <= set(
        Prediction.model_json_schema()["required"]
    )


def test_demo_scores_carry_growth_holdout_and_potential(demo_workdir: Path, tmp_path: Path) -> None:
    """On the demo's customers decided by the policy formula (scored with the churn/value pair,
    not the demo's uplift model): about 10% held out (all with none), the growth action reaches
    a sizeable share of medium-tier active customers, and high-risk customers never get it."""
    from churnclv.cli import main
    from churnclv.serving import SCORE_COLUMNS
    from churnclv.training import load_champion, tracking_uri_for

    uri = tracking_uri_for(demo_workdir)
    pair = f"models:/churnclv-churn/{load_champion(uri).churn_version}"  # no uplift model
    data, out = demo_workdir / "data", tmp_path / "scores.parquet"
    args = ["score", "--as-of", "2024-01-01", "--out", str(out), "--workdir", str(tmp_path)]
    args += ["--tracking-uri", uri, "--model-uri", pair]
    for kind in ("transactions", "events", "customers"):
        args += [f"--{kind}", str(data / f"{kind}.parquet")]
    assert main(args) == 0
    scores = pd.read_parquet(out)
    assert list(scores.columns[: len(SCORE_COLUMNS)]) == list(SCORE_COLUMNS)
    assert {"potential_high_value", "holdout", "action_basis"} <= set(scores.columns)
    assert abs(scores["holdout"].mean() - 0.1) < 0.035
    assert (scores.loc[scores["holdout"], "action"] == "none").all()
    assert set(scores["action_basis"]) == {"policy"}
    live = scores[~scores["holdout"]]
    medium_active = live[(live["value_tier"] == "medium") & (live["lifecycle_stage"] == "active")]
    assert 0.2 <= (medium_active["action"] == "upgrade_offer").mean() <= 0.8
    assert not ((live["risk_band"] == "high") & (live["action"] == "upgrade_offer")).any()
    assert scores["potential_high_value"].any()
    assert not scores.loc[scores["value_tier"] == "low", "potential_high_value"].any()


def test_merged_policy_yaml_is_the_complete_policy(tmp_path: Path) -> None:
    """The merged YAML of a partial file loads on its own to the same policy."""
    from churnclv._policy import merged_policy_yaml

    partial = _write(tmp_path, "holdout_share: 0.05\nrisk_band: {high: 0.8}\n")
    full = tmp_path / "full.yaml"
    full.write_text(merged_policy_yaml(partial))
    assert load_policy(full) == load_policy(partial)
    assert "value_tier" in full.read_text() and "upgrade_offer" in full.read_text()
