"""Uplift without churn and value models (issue 17): score, /predict and bundles on a store
whose only champion is the uplift model, and the gate's eligibility rule on a tiny example."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnclv.cli import main
from churnclv.decisions import Action, Policy, eligible, load_policy
from churnclv.serving._requests import CustomerIn
from churnclv.serving._scorer import OnlineScorer
from churnclv.training import load_bundle, load_champion, tracking_uri_for
from churnclv.training._policy_value import policy_rows
from churnclv.training._train_uplift import learned_choice
from churnclv.training._uplift_eligibility import constant_choice, send_eligibility

AS_OF = datetime(2024, 1, 1)
ACTIONS = ("email_reminder", "discount_coupon", "personal_call", "upgrade_offer")


# ---- the gate's policies treat only eligible customers (tiny, no model) ----
def test_learned_and_constant_policies_treat_only_eligible_customers() -> None:
    policy = Policy(
        actions=(Action("email", 0.5, 0.03), Action("vip", 20.0, 0.2, segments=("champions",)))
    )
    ok = eligible(policy, ["lost", "champions", "lost"], None, None)
    assert ok.tolist() == [[True, False], [True, True], [True, False]]
    uplift = np.array([[1.0, 100.0], [1.0, 100.0], [0.2, 100.0]])
    costs = np.array([0.5, 20.0])
    # vip pays most everywhere, but only the champion may get it
    assert learned_choice(uplift, costs, ok).tolist() == [1, 2, 0]
    assert learned_choice(uplift, costs).tolist() == [2, 2, 2]  # the old, ineligible choice
    vip_for_all_eligible = constant_choice(ok, 1)
    assert vip_for_all_eligible.tolist() == [0, 2, 0]
    # the rows the constant policy does not treat contribute nothing to its value
    arm = np.array([2, 2, 0])
    y = np.array([50.0, 80.0, 10.0])
    e = np.full((3, 3), 1 / 3)
    rows = policy_rows(arm, y, vip_for_all_eligible, np.array([0.0, 0.5, 20.0]), e)
    assert rows[0] == 0.0 and rows[2] == 0.0 and rows[1] == pytest.approx(80.0 * 3 - 20.0)


def test_send_eligibility_uses_segments_and_stages_and_no_tier_without_value_model() -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "as_of": pd.to_datetime(["2024-01-01"] * 3),
            "recency_days": [2.0, 300.0, 5.0],
            "frequency": [30.0, 1.0, 10.0],
            "monetary_total": [3000.0, 10.0, 500.0],
            "tenure_days": [700.0, 400.0, 30.0],
            "gap_mean_days": [20.0, np.nan, 3.0],
        }
    )
    ok = send_eligibility(frame, load_policy(), list(ACTIONS), reference=None)
    assert ok.shape == (3, 4)
    assert ok[:, 0].all()  # email_reminder: no restriction
    assert not ok[:, 3].any()  # upgrade_offer is restricted by tier: unknown without value model
    assert ok[0, 2] and not ok[1, 2]  # personal_call: the top customer yes, the lost one no


# ---- a store with only an uplift champion (one training, ~15 s) ----
@pytest.fixture(scope="module")
def uplift_only(generated_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("uplift_only")
    args = ["train-uplift", *_inputs(generated_dir), "--as-of", "2024-01-01"]
    args += ["--campaigns", str(generated_dir / "campaigns.parquet"), "--promote"]
    assert main([*args, "--workdir", str(work)]) == 0
    return work


def _inputs(data: Path) -> list[str]:
    return [
        "--transactions", str(data / "transactions.parquet"),
        "--events", str(data / "events.parquet"),
        "--customers", str(data / "customers.parquet"),
    ]  # fmt: skip


def _score(data: Path, work: Path, out: Path, *extra: str) -> int:
    args = ["score", *_inputs(data), "--as-of", "2024-01-01", "--out", str(out)]
    return main([*args, "--workdir", str(work), *extra])


def _customer(cid: str, data: Path) -> CustomerIn:
    tx = pd.read_parquet(data / "transactions.parquet")
    ev = pd.read_parquet(data / "events.parquet")
    cust = pd.read_parquet(data / "customers.parquet").set_index("customer_id")
    t = tx[(tx["customer_id"] == cid) & (tx["ts"] < AS_OF)]
    e = ev[(ev["customer_id"] == cid) & (ev["ts"] < AS_OF)]
    row = cust.loc[cid]
    return CustomerIn(
        customer_id=cid,
        as_of=AS_OF,
        transactions=[{"ts": s, "amount": a} for s, a in zip(t["ts"], t["amount"], strict=True)],
        events=[{"ts": s, "event_type": k} for s, k in zip(e["ts"], e["event_type"], strict=True)],
        attributes={c: row[c] for c in ("plan", "region", "acquisition_channel") if c in row},
        signup_ts=row.get("signup_ts"),
    )


@pytest.fixture(scope="module")
def scores(uplift_only: Path, generated_dir: Path) -> pd.DataFrame:
    out = uplift_only / "scores.parquet"
    assert _score(generated_dir, uplift_only, out) == 0
    return pd.read_parquet(out).set_index("customer_id")


def test_score_with_only_an_uplift_champion(
    uplift_only: Path, generated_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _score(generated_dir, uplift_only, tmp_path / "s.parquet") == 0
    err = " ".join(capsys.readouterr().err.split())
    assert err.count("no churn champion") == 1 and err.count("no value champion") == 1
    assert "actions come from the uplift champion" in err
    s = pd.read_parquet(tmp_path / "s.parquet")
    for col in ("churn_probability", "predicted_value", "value_tier", "risk_band"):
        assert s[col].isna().all(), col
    assert (s["reasons"] == "").all() and not s["potential_high_value"].any()
    assert s["lifecycle_stage"].notna().all() and s["rfm_segment"].notna().all()
    assert {f"uplift_{a}" for a in ACTIONS} <= set(s.columns)
    assert s["uplift_email_reminder"].notna().all()
    assert set(s["action_basis"]) <= {"learned", "best_uniform"}
    champion = load_champion(tracking_uri_for(uplift_only))
    assert champion.missing == ["churn", "value"]
    assert (s["model_version"] == f"uplift:v{champion.uplift_version}").all()
    # customer attributes are uplift features like the rest
    assert {"plan", "region"} <= set(champion.uplift.features_)


def test_learned_actions_from_uplift_alone_batch_equals_online(
    uplift_only: Path, generated_dir: Path
) -> None:
    """action = the eligible action with the largest uplift - cost (else none), batch and
    online alike; free actions make some pay, so the rule is exercised."""
    from churnclv.features import build_features
    from churnclv.serving._batch import score_features

    champion = load_champion(tracking_uri_for(uplift_only))
    champion.uplift.decision_ = {"basis": "learned"}
    base = load_policy()
    policy = dataclasses.replace(
        base,
        actions=tuple(dataclasses.replace(a, cost=0.0) for a in base.actions),
        holdout_share=0.0,
    )
    data = generated_dir
    tx = pd.read_parquet(data / "transactions.parquet")
    ev = pd.read_parquet(data / "events.parquet")
    cust = pd.read_parquet(data / "customers.parquet")
    feats = build_features(tx, ev, cust, as_of=pd.Timestamp(AS_OF))
    batch = score_features(feats, champion, policy).set_index("customer_id")
    up = batch[[f"uplift_{a}" for a in ACTIONS]].to_numpy(float)
    ok = eligible(policy, batch["rfm_segment"], None, batch["lifecycle_stage"])
    gain = np.where(ok & np.isfinite(up), up, -np.inf)
    want = np.where(gain.max(axis=1) > 0, np.array(ACTIONS)[gain.argmax(axis=1)], "none")
    assert batch["action"].tolist() == want.tolist()
    assert (batch["action_basis"] == "learned").all() and (batch["action"] != "none").any()
    ids = sorted(batch.index)[:6]
    online = OnlineScorer(champion, policy).score_customers([_customer(c, data) for c in ids])
    for rec in online:
        row = batch.loc[rec["customer_id"]]
        assert rec["churn_probability"] is None and rec["value_tier"] is None
        assert rec["action"] == row["action"] and rec["rfm_segment"] == row["rfm_segment"]
        for a in ACTIONS:
            assert rec[f"uplift_{a}"] == pytest.approx(row[f"uplift_{a}"], abs=1e-6)


@pytest.fixture
def client(uplift_only: Path) -> Iterator[object]:
    pytest.importorskip("bentoml")
    from test_openapi import service_client

    with service_client(uplift_only) as c:
        yield c


def test_predict_with_only_an_uplift_champion_equals_score(
    client: object, scores: pd.DataFrame, generated_dir: Path
) -> None:
    ids = sorted(scores.index)[:5]
    body = {
        "customers": [
            json.loads(_customer(c, generated_dir).model_dump_json(exclude_none=True)) for c in ids
        ]
    }
    r = client.post("/predict", json=body)  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["model_version"].startswith("uplift:v")
    for rec in answer["predictions"]:
        row = scores.loc[rec["customer_id"]]
        assert rec["churn_probability"] is None and rec["predicted_value"] is None
        assert rec["value_tier"] is None and rec["risk_band"] is None
        assert rec["action"] == row["action"] and rec["action_basis"] == row["action_basis"]
        assert rec["expected_net_gain"] == pytest.approx(row["expected_net_gain"], abs=1e-6)
        for a in ACTIONS:
            assert rec[f"uplift_{a}"] == pytest.approx(row[f"uplift_{a}"], abs=1e-6)
    info = client.get("/model").json()  # type: ignore[attr-defined]
    assert info["missing_models"] == ["churn", "value"] and "uplift" in info["models"]


def test_bundle_carries_the_uplift_champion(
    uplift_only: Path, generated_dir: Path, scores: pd.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "models"
    assert main(["export", "--out", str(out), "--workdir", str(uplift_only)]) == 0
    (folder,) = out.iterdir()
    assert (folder / "uplift" / "MLmodel").is_file() and not (folder / "churn").exists()
    champion = load_bundle(folder)
    assert champion.uplift is not None and champion.missing == ["churn", "value"]
    via = tmp_path / "bundle.parquet"
    assert _score(generated_dir, tmp_path / "fresh", via, "--model-uri", str(folder)) == 0
    got = pd.read_parquet(via).set_index("customer_id").loc[scores.index]
    assert got["action"].tolist() == scores["action"].tolist()
    for a in ACTIONS:
        np.testing.assert_allclose(got[f"uplift_{a}"], scores[f"uplift_{a}"], atol=1e-6)


# ---- bad campaign logs (acceptance 5): exit 2, a clear message, nothing written ----
@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            "C000001,2023-09-01,control\nC000002,2023-09-01,sms\n",
            "treatment 'sms' (1 row) is neither the control arm 'control' nor an action",
        ),
        ("", "campaigns file is empty (no data rows)"),
        (
            "C000001,2024-02-01,control\nC000002,2024-02-01,email_reminder\n",
            "2 of them sent on or after 2024-01-01",
        ),
        (
            "C000001,2023-09-01,email_reminder\nC000002,2023-09-01,discount_coupon\n",
            "effects cannot be estimated without a comparison group, so no uplift model is "
            "trained and actions stay on the policy formula",
        ),
    ],
    ids=["unknown-treatment", "empty-log", "sends-after-as-of", "no-control-arm"],
)
def test_train_uplift_bad_logs_exit_2_without_output(
    rows: str,
    message: str,
    generated_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = tmp_path / "log.csv"
    log.write_text("customer_id,ts,treatment\n" + rows)
    work = tmp_path / "work"
    args = ["train-uplift", "--transactions", str(generated_dir / "transactions.parquet")]
    args += ["--campaigns", str(log), "--as-of", "2024-01-01", "--workdir", str(work)]
    assert main(args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and "Traceback" not in err
    assert not work.exists()
