"""`churnclv monitor`: PSI, backtest of stored snapshots, drift verdict, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.metrics import roc_auc_score

import churnclv
from churnclv import InputTables
from churnclv._generate import write
from churnclv._io import atomic_write_parquet
from churnclv._monitor import backtest, monitor, psi, read_snapshots
from churnclv._monitor_history import (
    HISTORY,
    append_history,
    history_figure,
    history_sentence,
    read_history,
)
from churnclv.cli import main
from churnclv.decisions import load_policy
from churnclv.features import build_features, build_labels

DRIFT_AT = "2023-07-01"
SNAPSHOTS = ("2023-04-01", "2023-05-01", "2023-10-01")


def test_psi_matches_hand_computation() -> None:
    """Quartile bins of the reference, shares floored at 1e-4, sum (a - e) ln(a / e)."""
    expected = np.arange(1.0, 9.0)  # quartile cuts 2.75, 4.5, 6.25: two values per bin
    actual = np.array([1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 8.0, 9.0, 10.0, 11.0])
    e = np.array([0.25, 0.25, 0.25, 0.25, 1e-4])  # last bin: missing values
    a = np.array([0.3, 0.1, 0.1, 0.5, 1e-4])
    hand = float(np.sum((a - e) * np.log(a / e)))
    assert psi(expected, actual, bins=4) == pytest.approx(hand, rel=1e-12)
    assert psi(expected, expected, bins=4) == 0.0
    # a missing value is its own bin
    with_nan = np.array([1.0, 2.0, np.nan, np.nan])
    e2 = np.array([0.25, 0.25, 0.5])
    a2 = np.array([0.5, 1e-4, 0.5])
    assert psi(with_nan, [1.0, 1.0, np.nan, np.nan], bins=2) == pytest.approx(
        float(np.sum((a2 - e2) * np.log(a2 / e2)))
    )


def test_policy_monitoring_section_is_optional(tmp_path: Path) -> None:
    """The shipped thresholds load; a policy without the section gets the defaults."""
    assert load_policy().monitoring.psi_retrain == 0.25
    text = (Path(churnclv.__file__).parent / "default_policy.yaml").read_text()
    partial = tmp_path / "p.yaml"
    partial.write_text(text.split("\nmonitoring:")[0] + "\nmonitoring:\n  psi_watch: 0.2\n")
    pol = load_policy(partial)
    assert (pol.monitoring.psi_watch, pol.monitoring.psi_retrain) == (0.2, 0.25)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.split("\nmonitoring:")[0] + "\nmonitoring:\n  psi: 0.2\n")
    with pytest.raises(churnclv.InputError, match=r"monitoring\.psi"):
        load_policy(bad)


def _fake_snapshots(tables: InputTables, work: Path) -> None:
    """Snapshots scored by a fixed rule on recency (no model needed)."""
    for as_of in SNAPSHOTS:
        f = build_features(tables.transactions, tables.events, tables.customers, as_of=as_of)
        p = 1 / (1 + np.exp(-(f["recency_days"].to_numpy() - 60) / 30))
        snap = pd.DataFrame(
            {
                "customer_id": f["customer_id"],
                "churn_probability": p,
                "predicted_value": f["spend_90d"],
                "value_tier": np.where(f["spend_90d"] > 100, "high", "low"),
                "as_of": pd.Timestamp(as_of),
                "model_version": "churn:v1+value:v1",
                "churn_horizon_days": 90.0,
                "value_horizon_days": 90.0,
            }
        )
        atomic_write_parquet(snap, work / "snapshots" / f"{as_of}.parquet")


@pytest.fixture(scope="module")
def drifted() -> churnclv.SyntheticData:
    return churnclv.generate(1200, seed=0, history_days=900, future_days=200, drift_at=DRIFT_AT)


def test_drift_gives_retrain_after_the_change_and_ok_before(
    drifted: churnclv.SyntheticData, tmp_path: Path
) -> None:
    """Snapshots before the change: ok; one after: a PSI breach and retrain (fixed scores)."""
    tables = InputTables(drifted.transactions, drifted.events, drifted.customers)
    _fake_snapshots(tables, tmp_path)
    before = monitor(tables, as_of="2023-06-30", workdir=tmp_path)
    after = monitor(tables, as_of="2023-10-01", workdir=tmp_path)
    assert before["verdict"] == "ok", before["reasons"]
    assert max(before["drift"]["psi"].values()) < 0.1
    assert after["verdict"] == "retrain", after["reasons"]
    assert max(after["drift"]["psi"].values()) >= 0.25
    assert after["drift"]["reference_as_of"] == SNAPSHOTS[0]
    # the same dates without the change stay below the retrain threshold
    plain = churnclv.generate(1200, seed=0, history_days=900, future_days=200)
    same = InputTables(plain.transactions, plain.events, plain.customers)
    _fake_snapshots(same, tmp_path / "plain")
    assert monitor(same, as_of="2023-10-01", workdir=tmp_path / "plain")["verdict"] != "retrain"


def test_backtest_auc_equals_sklearn(drifted: churnclv.SyntheticData, tmp_path: Path) -> None:
    """A stored snapshot's backtest AUC is roc_auc_score on build_labels' churned."""
    tables = InputTables(drifted.transactions, drifted.events, drifted.customers)
    _fake_snapshots(tables, tmp_path)
    snaps, problems = read_snapshots(tmp_path)
    assert not problems and len(snaps) == 3
    row = backtest(snaps[0], drifted.transactions, "2023-12-31")
    assert row is not None
    labels = build_labels(drifted.transactions, snaps[0][["customer_id", "as_of"]])
    both = snaps[0].merge(labels, on="customer_id")
    assert row["churn_roc_auc"] == roc_auc_score(both["churned"], both["churn_probability"])
    assert backtest(snaps[2], drifted.transactions, "2023-12-01") is None  # horizon open


def test_cli_no_snapshots_and_corrupt_file(
    drifted: churnclv.SyntheticData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No snapshot: ok with a reason, exit 0; a corrupt one is named and skipped."""
    paths = write(drifted, tmp_path / "data")
    work = tmp_path / "work"
    args = ["monitor", "--transactions", str(paths["transactions"]), "--as-of", "2023-06-30"]
    args += ["--events", str(paths["events"]), "--workdir", str(work)]
    assert main(args) == 0
    report = json.loads((work / "monitor.json").read_text())
    assert report["verdict"] == "ok" and "no stored score snapshots" in report["reasons"][0]
    _fake_snapshots(InputTables(drifted.transactions, drifted.events, None), work)
    (work / "snapshots" / "2023-05-01.parquet").write_bytes(b"not parquet")
    assert main([*args, "--out", str(tmp_path / "m.json")]) == 0
    report = json.loads((tmp_path / "m.json").read_text())
    assert any("2023-05-01.parquet" in w for w in report["warnings"])
    assert report["snapshots"] == ["2023-04-01"]
    # the console wraps long paths at any width: compare without the line breaks and spaces
    said = "".join(capsys.readouterr().err.split())
    assert "2023-05-01.parquetcannotberead" in said
    assert main([*args[:4], "2023-10-01", *args[5:]]) == 3  # after the change: retrain
    report = json.loads((work / "monitor.json").read_text())
    assert report["verdict"] == "retrain"
    assert all(math.isfinite(v) for v in report["drift"]["psi"].values())
    client = MlflowClient(f"sqlite:///{work / 'mlruns.db'}")
    experiment = client.get_experiment_by_name("churnclv-monitor")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["verdict"] for r in runs) == ["ok", "ok", "retrain"]
    assert max(r.data.metrics.get("max_psi", 0) for r in runs) >= 0.25
    # the history holds one row per date (the repeated 2023-06-30 replaced), and its chart
    history = read_history(work)
    assert history["as_of"].dt.date.astype(str).tolist() == ["2023-06-30", "2023-10-01"]
    assert history["verdict"].tolist() == ["ok", "retrain"]
    assert (work / HISTORY.with_suffix(".png")).stat().st_size > 0
    latest = max(runs, key=lambda r: r.info.start_time)
    assert latest.data.tags["history"].startswith("2 checks from 2023-06-30 to 2023-10-01")
    assert "monitoring_history.png" in [a.path for a in client.list_artifacts(latest.info.run_id)]


@pytest.mark.slow
def test_train_score_monitor_round_trip(drifted: churnclv.SyntheticData, tmp_path: Path) -> None:
    """Train before the change, score three dates through the CLI, monitor before and after."""
    paths = write(drifted, tmp_path / "data")
    work = tmp_path / "work"
    inputs = ["--transactions", str(paths["transactions"]), "--events", str(paths["events"])]
    inputs += ["--customers", str(paths["customers"]), "--workdir", str(work)]
    train = ["train", *inputs, "--as-of", SNAPSHOTS[0], "--promote", "--max-cutoffs", "3"]
    assert main([*train, "--value-horizon-days", "90"]) == 0
    for as_of in SNAPSHOTS:
        out = str(tmp_path / f"scores-{as_of}.parquet")
        assert main(["score", *inputs, "--as-of", as_of, "--out", out]) == 0
        assert (work / "snapshots" / f"{as_of}.parquet").is_file()
    assert main(["monitor", *inputs, "--as-of", "2023-06-30"]) == 0
    before = json.loads((work / "monitor.json").read_text())
    assert before["verdict"] == "ok", before["reasons"]
    assert main(["monitor", *inputs, "--as-of", "2023-10-01"]) == 3
    after = json.loads((work / "monitor.json").read_text())
    assert after["verdict"] == "retrain", after["reasons"]
    snap = pd.read_parquet(work / "snapshots" / f"{SNAPSHOTS[0]}.parquet")
    labels = build_labels(drifted.transactions, snap[["customer_id", "as_of"]])
    both = snap.merge(labels, on="customer_id")
    auc = roc_auc_score(both["churned"], both["churn_probability"])
    assert after["backtest"][0]["churn_roc_auc"] == pytest.approx(auc, abs=1e-12)
    print(json.dumps({"before": before, "after": after}, indent=1, default=str)[:4000])


def test_no_horizon_ended_is_ok_with_a_reason(
    drifted: churnclv.SyntheticData, tmp_path: Path
) -> None:
    """Snapshots whose churn horizon is still open: verdict ok, and it says why."""
    tables = InputTables(drifted.transactions, drifted.events, drifted.customers)
    _fake_snapshots(tables, tmp_path)
    report = monitor(tables, as_of="2023-04-20", workdir=tmp_path)
    assert report["snapshots"] == ["2023-04-01"] and report["backtest"] == []
    assert report["verdict"] == "ok"
    assert any("nothing to backtest" in r for r in report["reasons"])


def _report(as_of: str, verdict: str, psi: float, auc: float | None, share: float) -> dict:
    backtest = [{"as_of": "2023-01-01", "churn_roc_auc": auc}] if auc is not None else []
    return {"as_of": as_of, "verdict": verdict, "snapshots": ["2023-01-01"], "backtest": backtest,
            "drift": {"psi": {"recency_days": psi, "spend_90d": psi / 2},
                      "tier_change_share": share},
            "reference_auc": 0.8}  # fmt: skip


def test_history_appends_replaces_and_tells_the_trend(tmp_path: Path) -> None:
    """Each verdict adds a row (the same date replaces it); the sentence and chart follow."""
    assert history_sentence(read_history(tmp_path)).startswith("no monitoring history yet")
    reports = [
        _report("2023-05-01", "ok", 0.03, None, 0.05),
        _report("2023-06-01", "watch", 0.15, 0.78, 0.08),
        _report("2023-07-01", "retrain", 0.5, 0.7, 0.3),
    ]
    for report in [reports[1], reports[0], reports[2], reports[2]]:  # out of order, repeated
        path, history, problem = append_history(report, tmp_path)
        assert problem is None
    assert path == tmp_path / HISTORY
    history = read_history(tmp_path)
    assert history["as_of"].dt.date.astype(str).tolist() == ["2023-05-01", "2023-06-01",
                                                              "2023-07-01"]  # fmt: skip
    assert history["max_psi_column"].tolist() == ["recency_days"] * 3
    assert history["backtest_auc"].isna().tolist() == [True, False, False]
    assert history_sentence(history) == (
        "3 checks from 2023-05-01 to 2023-07-01: largest PSI 0.030 -> 0.500 (retrain at 0.25), "
        "backtest churn AUC 0.780 -> 0.700, value tier changes 5% -> 30%; "
        "verdict retrain since 2023-07-01 (1 check)."
    )
    fig = history_figure(history)
    assert [ax.get_title(loc="left") for ax in fig.axes] == [
        "largest PSI (any feature or score)",
        "backtest churn AUC (latest ended snapshot)",
        "share changing value tier",
    ]
    assert len(fig.axes[0].collections[0].get_offsets()) == 3  # one point per date
    # an unreadable history is named and started anew, not fatal
    (tmp_path / HISTORY).write_bytes(b"not parquet")
    _, history, problem = append_history(reports[0], tmp_path)
    assert problem is not None and "history.parquet cannot be read" in problem
    assert len(history) == 1


def test_a_snapshot_never_carries_the_scores_structured_reasons(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from churnclv._monitor import write_snapshot

    scored = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "as_of": pd.to_datetime(["2024-01-01"] * 2),
            "model_version": ["churn:v1+value:v1"] * 2,
            "churn_probability": [0.1, 0.9],
            "predicted_value": [10.0, 20.0],
            "value_tier": ["low", "high"],
            "lifecycle_stage": ["active", "silent"],
        }
    )
    scored.attrs["reasons_detail"] = [[{"feature": "recency_days", "value": 200.0}]] * 2
    champion = type("C", (), {"churn_horizon_days": 90.0, "value_horizon_days": 365.0})()
    path = write_snapshot(scored, champion, tmp_path)
    assert b"reasons_detail" not in pq.read_schema(path).metadata[b"pandas"]
    assert scored.attrs  # the caller's scores keep them
