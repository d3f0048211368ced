"""What people read: metrics that discriminate at any base rate, and the MLflow run pages."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from churnclv.training import churn_metrics, tracking_uri_for


def test_retained_lift_tells_models_apart_where_churn_lift_cannot() -> None:
    """At a 77% churn rate every fair model's churn lift sits near its 1.3 cap; the
    retained-class lift and the captured churn value still separate good from poor."""
    rng = np.random.default_rng(0)
    n = 4000
    y = (rng.random(n) < 0.77).astype(int)
    signal = y + rng.normal(0, 0.5, n)
    good, poor = signal + rng.normal(0, 0.1, n), signal + rng.normal(0, 1.5, n)
    worth = rng.gamma(2.0, 50.0, n)
    m_good = churn_metrics(y, 1 / (1 + np.exp(-good)), value=worth)
    m_poor = churn_metrics(y, 1 / (1 + np.exp(-poor)), value=worth)
    cap = 1 / y.mean()
    assert (
        m_good["churn_top_decile_lift"] > 0.97 * cap and m_poor["churn_top_decile_lift"] > 0.9 * cap
    )
    assert m_good["churn_retained_top_decile_lift"] > 1.5 * m_poor["churn_retained_top_decile_lift"]
    assert m_good["churn_retained_pr_auc"] > m_poor["churn_retained_pr_auc"] + 0.1
    assert 0.1 < m_good["churn_value_captured_top_decile"] < 0.2  # random would hold ~0.10


def test_training_run_reads_as_a_model_development_run(demo_workdir: Path) -> None:
    """Experiment kind tag, run named for its window, description, comparison artifact,
    metrics with 4 significant digits, model versions described."""
    from mlflow import MlflowClient

    uri = tracking_uri_for(demo_workdir)
    client = MlflowClient(uri, registry_uri=uri)
    exp = client.get_experiment_by_name("churnclv")
    assert exp is not None
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert exp.tags["mlflow.note.content"]
    run = client.search_runs(  # the training run, not the demo's uplift run
        [exp.experiment_id],
        "attributes.run_name LIKE 'train %'",
        order_by=["attributes.start_time DESC"],
    )[0]
    assert re.fullmatch(r"train \d{4}-\d{2}-\d{2} churn\d+ value\d+", run.info.run_name)
    note = run.data.tags["mlflow.note.content"]
    assert "Training as of" in note and "ROC AUC" in note and "Promotion" in note
    paths = {a.path for a in client.list_artifacts(run.info.run_id, "comparison")}
    assert paths == {"comparison/comparison.html", "comparison/comparison.png"}
    exact = {"churn_roc_auc", "value_gini"}  # the champion gates compare these exactly
    for key, value in run.data.metrics.items():
        if key not in exact and value != 0:
            assert float(f"{value:.4g}") == value, (key, value)
    assert "churn_retained_top_decile_lift" in run.data.metrics
    assert "churn_top_decile_lift" in run.data.metrics  # kept for outside readers
    html = client.download_artifacts(run.info.run_id, "comparison/comparison.html")
    text = Path(html).read_text()
    assert "RFM" in text and "BG/NBD" in text and "Retained lift" in text
    for mv in client.search_model_versions(f"run_id='{run.info.run_id}'"):
        assert mv.description and "trained in run 'train " in mv.description
    scoring = client.get_experiment_by_name("churnclv-scoring")
    assert scoring is not None
    assert scoring.tags["mlflow.experimentKind"] == "custom_model_development"
    report = client.search_runs([scoring.experiment_id])[0]
    assert report.info.run_name.startswith("decision report ")


def test_gains_plot_draws_the_model_on_top_and_first_in_the_legend() -> None:
    """A baseline running on the model's curve cannot hide it (issue 18)."""
    from churnclv.training._plots import gains_plot

    y = np.array([1, 0, 1, 0, 1, 1, 0, 0, 1, 0] * 5)
    s = np.linspace(1, 0, len(y))
    fig = gains_plot(y, {"model": s, "BG/NBD": s.copy(), "RFM recency": s[::-1]})
    lines = {line.get_label().split(" (")[0]: line for line in fig.axes[0].get_lines()}
    model, bgnbd = lines["model"], lines["BG/NBD"]
    assert model.get_zorder() > bgnbd.get_zorder() and model.get_linewidth() > bgnbd.get_linewidth()
    assert bgnbd.get_linestyle() != "-" and bgnbd.get_marker() not in (None, "None", "")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[0].startswith("model")


def test_metrics_are_rounded_to_four_significant_digits_but_gates_are_exact() -> None:
    from churnclv.training._mlflow_views import comparison_rows, round_metrics

    out = round_metrics({"churn_roc_auc": 0.87654321, "churn_brier": 0.123456}, ("churn_roc_auc",))
    assert out == {"churn_roc_auc": 0.87654321, "churn_brier": 0.1235}
    rows = comparison_rows({"churn_brier": 0.1, "baseline_rfm_churn_brier": 0.9})
    assert rows == [("Churn Brier score", "lower is better", {"model": 0.1})]  # RFM: no prob.
