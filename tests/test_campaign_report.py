"""Budgeted campaigns and the decision report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnclv.cli import main
from churnclv.decisions import campaign_summary, load_policy, select_under_budget

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scores(demo_workdir: Path) -> pd.DataFrame:
    return pd.read_parquet(demo_workdir / "scores.parquet")


@pytest.mark.parametrize("budget", [0.0, 10.0, 250.0, 1e9])
def test_budget_is_never_exceeded(scores: pd.DataFrame, budget: float) -> None:
    """The selected customers' actions cost at most the budget."""
    chosen = select_under_budget(scores, load_policy(), budget)
    assert chosen.loc[chosen["selected"], "action_cost"].sum() <= budget + 1e-9
    assert not chosen.loc[chosen["selected"], "action"].eq("none").any()


def test_budget_selection_beats_random_selections_of_equal_cost(scores: pd.DataFrame) -> None:
    """Greedy gain-per-cost selection earns at least as much as 100 random picks of equal cost."""
    policy = load_policy()
    budget = 200.0
    chosen = select_under_budget(scores, policy, budget)
    ours = chosen.loc[chosen["selected"], "expected_net_gain"].sum()
    spent = chosen.loc[chosen["selected"], "action_cost"].sum()
    candidates = chosen[chosen["action"] != "none"]
    rng = np.random.default_rng(0)
    for _ in range(100):
        order = rng.permutation(len(candidates))
        cost = candidates["action_cost"].to_numpy()[order]
        take = np.cumsum(cost) <= spent
        random_gain = candidates["expected_net_gain"].to_numpy()[order][take].sum()
        assert ours >= random_gain - 1e-9


def test_no_budget_selects_every_paying_action(scores: pd.DataFrame) -> None:
    """Without a budget every customer whose best action pays is in the campaign."""
    chosen = select_under_budget(scores, load_policy(), None)
    assert chosen["selected"].tolist() == chosen["action"].ne("none").tolist()
    summary = campaign_summary(chosen)
    assert summary["expected_net_gain"] == pytest.approx(
        chosen.loc[chosen["selected"], "expected_net_gain"].sum()
    )


def test_negative_budget_is_an_input_error(scores: pd.DataFrame) -> None:
    """A negative budget is refused with a message naming the budget."""
    from churnclv import InputError

    with pytest.raises(InputError, match="budget must be"):
        select_under_budget(scores, load_policy(), -1.0)


def test_scores_carry_reasons_in_words(scores: pd.DataFrame) -> None:
    """Every scored customer has three plain-word reasons."""
    assert scores["reasons"].str.count(";").eq(2).all()
    assert scores["reasons"].str.len().gt(10).all()


def test_report_verb_writes_html_with_plots(demo_workdir: Path, tmp_path: Path) -> None:
    """`churnclv report` writes one HTML page embedding the decision and model plots."""
    out = tmp_path / "r.html"
    code = main(
        [
            "report",
            "--scores", str(demo_workdir / "scores.parquet"),
            "--out", str(out),
            "--workdir", str(demo_workdir),
        ]
    )  # fmt: skip
    assert code == 0
    text = out.read_text()
    assert text.count("<img ") == 9  # 6 decision plots + 3 champion-run plots
    assert "Where the value at risk is" in text
    assert (tmp_path / "r_selected_customers.csv").exists()


def test_demo_writes_report_and_logs_it(demo_workdir: Path) -> None:
    """The demo leaves report.html and logs its plots to the churnclv-scoring experiment."""
    import mlflow

    from churnclv.training import tracking_uri_for

    assert (demo_workdir / "report.html").stat().st_size > 10_000
    mlflow.set_tracking_uri(tracking_uri_for(demo_workdir))
    runs = mlflow.search_runs(experiment_names=["churnclv-scoring"])
    assert len(runs) >= 1
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(runs.iloc[-1]["run_id"], "report")}
    assert "report/tier_risk_matrix.png" in arts
    assert "report/report_selected_customers.csv" in arts
