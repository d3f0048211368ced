"""End to end: demo, train, score on generated data, tracked in MLflow with a champion."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnclv._io import load_inputs
from churnclv.cli import main
from churnclv.decisions import LIFECYCLE_STAGES, RFM_SEGMENTS
from churnclv.serving import SCORE_COLUMNS
from churnclv.training import (
    ALIAS,
    CHURN_MODEL,
    VALUE_MODEL,
    BoosterModel,
    ChurnModel,
    TrainResult,
    tracking_uri_for,
    train,
)

pytestmark = pytest.mark.slow


def test_demo_leaves_scores_with_design_columns(demo_workdir: Path) -> None:
    """The demo writes scores.parquet with the DESIGN §7 columns and one row per customer."""
    scores = pd.read_parquet(demo_workdir / "scores.parquet")
    assert list(scores.columns[: len(SCORE_COLUMNS)]) == list(SCORE_COLUMNS)
    assert scores["customer_id"].is_unique
    tx = pd.read_parquet(demo_workdir / "data" / "transactions.parquet")
    truth = pd.read_parquet(demo_workdir / "data" / "truth.parquet")
    as_of = pd.Timestamp("2024-01-01")
    buyers = tx.loc[(tx["ts"] < as_of) & (tx["amount"] > 0), "customer_id"].nunique()
    assert len(scores) == buyers == len(truth)
    assert scores["churn_probability"].between(0, 1).all()
    assert set(scores["value_tier"]) <= {"high", "medium", "low"}
    assert set(scores["risk_band"]) <= {"high", "medium", "low"}
    assert set(scores["lifecycle_stage"]) <= set(LIFECYCLE_STAGES)
    assert set(scores["rfm_segment"]) <= set(RFM_SEGMENTS)


def test_demo_tracks_metrics_and_champions(demo_workdir: Path) -> None:
    """The demo's MLflow store holds a run with churn AUC and value Gini and both champions."""
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri_for(demo_workdir)
    assert (demo_workdir / "mlruns.db").exists()
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(
        experiment_names=["churnclv"], filter_string="attributes.run_name LIKE 'train %'"
    )  # not uplift
    assert len(runs) == 1
    run = runs.iloc[0]
    assert 0.5 < run["metrics.churn_roc_auc"] <= 1
    assert 0 < run["metrics.value_gini"] <= 1
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for name in (CHURN_MODEL, VALUE_MODEL):
        mv = client.get_model_version_by_alias(name, ALIAS)
        assert mv.run_id == run["run_id"]


def test_demo_learns_actions_from_campaigns(demo_workdir: Path) -> None:
    """The demo trains and promotes the uplift model, scores with it, and shows learned vs
    policy-formula vs oracle actions valued on the synthetic truth (printed and in the report)."""
    from mlflow import MlflowClient

    from churnclv.decisions import load_policy
    from churnclv.training._registry import UPLIFT_MODEL

    uri = tracking_uri_for(demo_workdir)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert str(client.get_model_version_by_alias(UPLIFT_MODEL, ALIAS).version) == "1"
    scores = pd.read_parquet(demo_workdir / "scores.parquet")
    policy = load_policy()
    assert {f"uplift_{a.name}" for a in policy.actions} <= set(scores.columns)
    assert scores["action_basis"].nunique() == 1
    assert scores["action_basis"].iloc[0] in ("learned", "best_uniform")
    printed = " ".join((demo_workdir / "demo_output.txt").read_text().split())
    assert "uplift model v1 (promoted to champion), trained on" in printed
    assert "Customers contacted per action: learned vs policy formula vs oracle" in printed
    assert "true value per customer" in printed
    # the learned actions' true value, recomputed from the scores and the truth
    truth = pd.read_parquet(demo_workdir / "data" / "truth.parquet").set_index("customer_id")
    truth = truth.reindex(scores["customer_id"])
    costs = {a.name: a.cost for a in policy.actions}
    given = scores["action"].where(scores["selected"], "none").to_numpy()
    gain = [
        truth[f"effect_{a}"].iat[i] - costs[a] if a != "none" else 0.0 for i, a in enumerate(given)
    ]
    learned = f"worth {float(np.mean(gain)):,.2f}"
    assert "Checked against the synthetic truth" in printed and learned in printed
    report = " ".join((demo_workdir / "report.html").read_text().split())
    assert "Actions learned from campaigns" in report and learned in report
    assert "Policy formula would give it" in report and "On held-out campaigns" in report


def test_model_beats_rfm_baseline_out_of_time(demo_workdir: Path) -> None:
    """On the out-of-time window the churn model ranks better than recency alone."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri_for(demo_workdir))
    runs = mlflow.search_runs(
        experiment_names=["churnclv"], filter_string="attributes.run_name LIKE 'train %'"
    )
    run = runs.iloc[0]  # the training run, not the demo's uplift run
    assert run["metrics.churn_roc_auc"] > run["metrics.baseline_rfm_churn_roc_auc"]


def test_score_verb_matches_demo_scores(demo_workdir: Path, tmp_path: Path) -> None:
    """`churnclv score` with the champion reproduces the demo's batch scores."""
    data = demo_workdir / "data"
    out = tmp_path / "scores.csv"
    code = main(
        [
            "score",
            "--transactions",
            str(data / "transactions.parquet"),
            "--events",
            str(data / "events.parquet"),
            "--customers",
            str(data / "customers.parquet"),
            "--as-of",
            "2024-01-01",
            "--out",
            str(out),
            "--workdir",
            str(demo_workdir),
        ]
    )
    assert code == 0
    fresh = pd.read_csv(out)
    demo = pd.read_parquet(demo_workdir / "scores.parquet")
    pd.testing.assert_series_equal(fresh["churn_probability"], demo["churn_probability"], atol=1e-9)
    assert fresh["action"].tolist() == demo["action"].tolist()


def test_score_without_champion_is_an_input_error(
    tmp_path: Path, generated_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Scoring against an empty store exits 2 telling the user to train first."""
    code = main(
        [
            "score",
            "--transactions",
            str(generated_dir / "transactions.parquet"),
            "--as-of",
            "2024-01-01",
            "--out",
            str(tmp_path / "s.parquet"),
            "--workdir",
            str(tmp_path / "empty"),
        ]
    )
    assert code == 2
    assert "champion" in capsys.readouterr().err
    assert not (tmp_path / "s.parquet").exists()


class _ShuffledLabels(BoosterModel):
    """A deliberately worse churn estimator: it learns from permuted labels."""

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> _ShuffledLabels:
        return super().fit(frame, np.random.default_rng(self.seed).permutation(y))


def _train_again(work: Path, churn_model: BoosterModel) -> TrainResult:
    data = work / "data"
    tables = load_inputs(
        data / "transactions.parquet", data / "events.parquet", data / "customers.parquet"
    )
    return train(
        tables,
        as_of="2024-01-01",
        tracking_uri=tracking_uri_for(work),
        promote=True,
        seed=3,
        churn_model=churn_model,
    )


def test_worse_model_is_not_promoted(demo_workdir: Path, tmp_path: Path) -> None:
    """A churn model trained on shuffled labels does not take the champion alias."""
    from mlflow import MlflowClient

    work = tmp_path / "work"
    shutil.copytree(demo_workdir, work)
    uri = tracking_uri_for(work)
    before = MlflowClient(uri, uri).get_model_version_by_alias(CHURN_MODEL, ALIAS).version
    result = _train_again(work, _ShuffledLabels("churn", ChurnModel().booster_params(), seed=3))
    assert result.promoted["churn"] is False
    assert "vs champion" in result.reasons["churn"]
    assert MlflowClient(uri, uri).get_model_version_by_alias(CHURN_MODEL, ALIAS).version == before


def test_better_model_is_promoted(demo_workdir: Path, tmp_path: Path) -> None:
    """A churn model that beats a weak champion on the same window takes the alias."""
    from mlflow import MlflowClient

    work = tmp_path / "work"
    shutil.copytree(demo_workdir, work)
    uri = tracking_uri_for(work)
    weak = _train_again(work, _ShuffledLabels("churn", ChurnModel().booster_params(), seed=3))
    assert weak.promoted["churn"] is False  # the demo champion stays
    client = MlflowClient(uri, uri)
    client.set_registered_model_alias(
        CHURN_MODEL, ALIAS, weak.churn_version
    )  # make the weak one champion
    strong = _train_again(work, ChurnModel(3))
    assert strong.promoted["churn"] is True
    assert (
        str(client.get_model_version_by_alias(CHURN_MODEL, ALIAS).version) == strong.churn_version
    )


def test_incomparable_champion_is_kept(demo_workdir: Path, tmp_path: Path) -> None:
    """A run whose data lacks the champion's inputs (no events) never replaces it."""
    from mlflow import MlflowClient

    work = tmp_path / "work"
    shutil.copytree(demo_workdir, work)
    uri = tracking_uri_for(work)
    tables = load_inputs(work / "data" / "transactions.parquet")
    result = train(tables, as_of="2024-01-01", tracking_uri=uri, promote=True, seed=3)
    assert result.promoted == {"churn": False, "value": False}
    assert "lacks" in result.reasons["churn"]
    assert str(MlflowClient(uri, uri).get_model_version_by_alias(CHURN_MODEL, ALIAS).version) == "1"


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))
    }


def test_generate_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    """`churnclv generate` twice with one seed writes the same bytes."""
    for name in ("a", "b"):
        assert (
            main(["generate", "--customers", "300", "--seed", "11", "--out", str(tmp_path / name)])
            == 0
        )
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert sorted(_digest(tmp_path / "a")) == [
        "campaign_truth.parquet",
        "campaigns.parquet",
        "customers.parquet",
        "events.parquet",
        "transactions.parquet",
        "truth.parquet",
    ]


def test_generated_truth_is_consistent(generated_dir: Path) -> None:
    """A customer the truth marks not alive has no transaction after the as-of date."""
    tx = pd.read_parquet(generated_dir / "transactions.parquet")
    truth = pd.read_parquet(generated_dir / "truth.parquet")
    dead = set(truth.loc[~truth["alive"], "customer_id"])
    later = set(tx.loc[tx["ts"] >= pd.Timestamp("2024-01-01"), "customer_id"])
    assert dead and not (dead & later)
