"""train-uplift end to end: CLI training on a campaign log, then `score` and the service agree."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from _uplift_data import add_campaigns
from mlflow import MlflowClient

from churnclv.cli import main
from churnclv.decisions import load_policy
from churnclv.serving._requests import CustomerIn
from churnclv.serving._scorer import OnlineScorer
from churnclv.training import champion_versions, load_champion, tracking_uri_for
from churnclv.training._registry import ALIAS, UPLIFT_MODEL

AS_OF = datetime(2024, 1, 1)
ACTIONS = ("email_reminder", "discount_coupon", "personal_call")


def _known(row: dict, names: tuple[str, ...]) -> dict:
    """The fields of ``row`` among ``names`` that hold a value."""
    return {n: row[n] for n in names if n in row and not pd.isna(row[n])}


def _customer(cid: str, tx: pd.DataFrame, ev: pd.DataFrame, cust: pd.DataFrame) -> CustomerIn:
    t, e, row = tx[tx["customer_id"] == cid], ev[ev["customer_id"] == cid], cust.loc[cid]
    return CustomerIn(
        customer_id=cid,
        as_of=AS_OF,
        transactions=[  # with category and channel, as the batch scores read them
            {"ts": r["ts"], "amount": r["amount"], **_known(r, ("category", "channel"))}
            for r in t.to_dict("records")
        ],
        events=[
            {"ts": r["ts"], "event_type": r["event_type"], **_known(r, ("value",))}
            for r in e.to_dict("records")
        ],
        attributes={c: row[c] for c in ("plan", "region", "acquisition_channel") if c in row},
        signup_ts=row.get("signup_ts"),
    )


def test_train_uplift_then_score_and_predict_agree(demo_workdir: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(demo_workdir, work, ignore=shutil.ignore_patterns("*.lock"))
    uri = tracking_uri_for(work)  # this log's model is the first uplift champion, not the demo's
    MlflowClient(uri, uri).delete_registered_model_alias(UPLIFT_MODEL, ALIAS)
    data = work / "data"
    tx, log = add_campaigns(pd.read_parquet(data / "transactions.parquet"), pd.Timestamp(AS_OF))
    ev = pd.read_parquet(data / "events.parquet")
    ev = ev[ev["ts"] < AS_OF]
    tx.to_parquet(tmp_path / "tx.parquet")
    ev.to_parquet(tmp_path / "ev.parquet")
    log.to_parquet(tmp_path / "campaigns.parquet")
    inputs = [
        "--transactions",
        str(tmp_path / "tx.parquet"),
        "--events",
        str(tmp_path / "ev.parquet"),
    ]
    inputs += ["--customers", str(data / "customers.parquet"), "--workdir", str(work)]
    as_of = ["--as-of", "2024-01-01"]
    assert (
        main(
            [
                "train-uplift",
                *inputs,
                *as_of,
                "--campaigns",
                str(tmp_path / "campaigns.parquet"),
                "--promote",
            ]
        )
        == 0
    )

    out = tmp_path / "scores.parquet"
    assert main(["score", *inputs, *as_of, "--out", str(out)]) == 0
    scores = pd.read_parquet(out).set_index("customer_id")
    assert {f"uplift_{a}" for a in ACTIONS} <= set(scores.columns)
    assert scores["uplift_personal_call"].isna().all()  # never sent: not estimated
    assert scores["uplift_discount_coupon"].notna().all()
    assert set(scores["action_basis"]) <= {"learned", "best_uniform"}
    champion = load_champion(tracking_uri_for(work))
    assert champion.uplift is not None
    assert (scores["model_version"] == champion.model_version).all()
    assert champion.model_version.endswith(f"+uplift:v{champion.uplift_version}")
    # the service's reload check sees the uplift alias too, so a new uplift champion is swapped in
    assert champion_versions(tracking_uri_for(work)) == (
        champion.churn_version,
        champion.value_version,
        champion.uplift_version,
    )
    scorer = OnlineScorer(champion, load_policy())
    cust = pd.read_parquet(data / "customers.parquet").set_index("customer_id")
    ids = sorted(scores.index)[:8]
    got = scorer.score_customers([_customer(c, tx, ev, cust) for c in ids])
    for rec in got:
        row = scores.loc[rec["customer_id"]]
        assert rec["action"] == row["action"] and rec["action_basis"] == row["action_basis"]
        assert rec["expected_net_gain"] == pytest.approx(row["expected_net_gain"], abs=1e-6)
        for a in ("email_reminder", "discount_coupon"):
            assert rec[f"uplift_{a}"] == pytest.approx(row[f"uplift_{a}"], abs=1e-6)
        assert rec["uplift_personal_call"] is None


def test_train_uplift_refuses_bad_logs(tmp_path: Path, generated_dir: Path, capsys) -> None:
    log = pd.DataFrame(
        {
            "customer_id": ["C1", "C2"],
            "ts": pd.to_datetime(["2023-10-01", "2023-10-01"]),
            "treatment": ["email_reminder", "discount_coupon"],
        }
    )
    log.to_csv(tmp_path / "nocontrol.csv", index=False)
    base = ["train-uplift", "--transactions", str(generated_dir / "transactions.parquet")]
    base += ["--as-of", "2024-01-01", "--workdir", str(tmp_path / "w")]
    assert main([*base, "--campaigns", str(tmp_path / "nocontrol.csv")]) == 2
    msg = capsys.readouterr().err
    assert "without a comparison group" in msg and "policy formula" in msg
    late = log.assign(
        treatment=["control", "email_reminder"], ts=pd.to_datetime(["2023-12-20"] * 2)
    )
    late.to_csv(tmp_path / "late.csv", index=False)
    assert main([*base, "--campaigns", str(tmp_path / "late.csv")]) == 2
    assert "complete 30-day response window" in capsys.readouterr().err
    assert not (tmp_path / "w" / "mlruns.db").exists()
