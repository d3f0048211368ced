"""What a person reads in the MLflow UI: experiment kind, run names, descriptions,
rounded metrics and the model-against-baselines comparison of every training run.

Our experiments carry the ``mlflow.experimentKind`` tag ``custom_model_development``:
MLflow 3's UI lists them under "Model training". Which view an experiment opens in
(GenAI: traces and token usage, or model training: runs) MLflow 3.17 takes from the
``workflowType`` query parameter, else from a browser setting that defaults to GenAI,
not from the tag; so the addresses we print end in ``?workflowType=machine_learning``
(:func:`training_runs_url`). Descriptions are the ``mlflow.note.content`` tag of
experiments and runs (Markdown) and the model versions' description.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

__all__ = [
    "EXPERIMENT_KIND",
    "NOTE",
    "comparison_html",
    "comparison_rows",
    "describe_versions",
    "log_comparison",
    "report_run_name",
    "round_metrics",
    "run_description",
    "tag_experiment",
    "training_run_name",
    "training_runs_url",
]

#: The experiment tag MLflow 3's UI files experiments by, and ours (model development).
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
#: The tag MLflow shows as the description of an experiment or a run.
NOTE = "mlflow.note.content"

_EXPERIMENT_NOTES = {
    "churnclv": "One run per `churnclv train`: the churn and value models and, on the same "
    "out-of-time rows, the RFM and BG/NBD baselines. Each run's description says what it "
    "measured; its `comparison` artifact puts model and baselines side by side.",
    "churnclv-scoring": "One run per decision report (`churnclv score --report`, `churnclv "
    "report`, `churnclv demo`): the report, its figures, the selected customers and campaign "
    "totals.",
    "churnclv-monitor": "One run per `churnclv monitor`: backtests of stored score snapshots, "
    "drift and the verdict.",
}

#: Comparison rows: (metric suffix, label, better), churn metrics then value metrics.
_CHURN_ROWS = (
    ("roc_auc", "Churn ROC AUC", "high"),
    ("pr_auc", "Churn PR AUC", "high"),
    ("retained_pr_auc", "Retained PR AUC", "high"),
    ("retained_top_decile_lift", "Retained lift, lowest-risk 10%", "high"),
    ("value_captured_top_decile", "Churned value in riskiest 10%", "high"),
    ("top_decile_lift", "Churn lift, riskiest 10%", "high"),
    ("brier", "Churn Brier score", "low"),
    ("log_loss", "Churn log loss", "low"),
    ("ece", "Churn calibration error", "low"),
)
_VALUE_ROWS = (
    ("gini", "Value normalised Gini", "high"),
    ("spearman", "Value Spearman", "high"),
    ("decile_mape", "Value decile MAPE", "low"),
    ("rmse", "Value RMSE", "low"),
    ("total_ratio", "Value total predicted / actual", "one"),
)
#: Probability metrics mean nothing for the RFM recency ratio (not a probability).
_NOT_FOR_RFM = {"brier", "log_loss", "ece"}
_BETTER_WORDS = {"high": "higher is better", "low": "lower is better", "one": "closest to 1"}


def tag_experiment(name: str) -> None:
    """Tag experiment ``name`` of the current store as model development, with a description.

    Only tags that differ are written, so a store read by many trainings is
    written once. Best effort: the tags are for people, and a store that
    refuses them (e.g. a read-only user) must not stop a training.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    try:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            return
        want = {EXPERIMENT_KIND[0]: EXPERIMENT_KIND[1]}
        if name in _EXPERIMENT_NOTES:
            want[NOTE] = _EXPERIMENT_NOTES[name]
        for key, value in want.items():
            if exp.tags.get(key) != value:
                client.set_experiment_tag(exp.experiment_id, key, value)
    except Exception:  # cosmetic tags never fail the work that asked for them
        return


def training_runs_url(tracking_uri: str, base: str) -> str:
    """The UI address of experiment ``churnclv``'s training runs, in the model-training view.

    MLflow 3.17's UI picks its view (GenAI or model training) from a browser
    setting that defaults to GenAI; ``?workflowType=machine_learning`` opens the
    model-training view whatever that setting is. The experiment's id is read
    from a sqlite store without starting MLflow; for other stores the address
    is the experiment list.

    Examples
    --------
    >>> from churnclv.training._mlflow_views import training_runs_url
    >>> training_runs_url("sqlite:///nowhere/mlruns.db", "http://127.0.0.1:5000")
    'http://127.0.0.1:5000/#/experiments?workflowType=machine_learning'
    """
    import sqlite3
    from pathlib import Path

    from churnclv.training._registry import EXPERIMENT

    where = "/#/experiments"
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    if tracking_uri.startswith("sqlite:///") and db.is_file():
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            try:
                row = con.execute(
                    "SELECT experiment_id FROM experiments WHERE name = ?", (EXPERIMENT,)
                ).fetchone()
            finally:
                con.close()
        except sqlite3.Error:
            row = None
        if row is not None:
            where = f"/#/experiments/{row[0]}/runs"
    return f"{base.rstrip('/')}{where}?workflowType=machine_learning"


def _days(value: Any) -> str:
    return f"{float(value):g}"


def training_run_name(
    as_of: pd.Timestamp, churn_horizon_days: float, value_horizon_days: float
) -> str:
    """A training run's name: its window.

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv.training._mlflow_views import training_run_name
    >>> training_run_name(pd.Timestamp("2024-01-01"), 90.0, 365.0)
    'train 2024-01-01 churn90 value365'
    """
    return (
        f"train {pd.Timestamp(as_of).date()} churn{_days(churn_horizon_days)} "
        f"value{_days(value_horizon_days)}"
    )


def report_run_name(as_of: str | None, model_version: str | None) -> str:
    """A decision report run's name: what it is, for which date and champion.

    Examples
    --------
    >>> from churnclv.training._mlflow_views import report_run_name
    >>> report_run_name("2024-01-01", "churn:v1+value:v1")
    'decision report 2024-01-01 churn:v1+value:v1'
    """
    return " ".join(["decision report", *(x for x in (as_of, model_version) if x)])


def round_metrics(metrics: Mapping[str, float], exact: tuple[str, ...] = ()) -> dict[str, float]:
    """The finite metrics rounded to 4 significant digits (``exact`` ones kept as they are).

    Examples
    --------
    >>> from churnclv.training._mlflow_views import round_metrics
    >>> round_metrics({"a": 0.123456789, "b": 1234.5678, "c": float("nan"), "d": 0.98765},
    ...               exact=("d",))
    {'a': 0.1235, 'b': 1235.0, 'd': 0.98765}
    """
    out = {}
    for key, value in metrics.items():
        v = float(value)
        if math.isfinite(v):
            out[key] = v if key in exact else float(f"{v:.4g}")
    return out


def _metric(metrics: Mapping[str, float], key: str) -> float | None:
    v = metrics.get(key)
    return float(v) if v is not None and math.isfinite(float(v)) else None


def comparison_rows(metrics: Mapping[str, float]) -> list[tuple[str, str, dict[str, float]]]:
    """``(label, better in words, {"model"|"RFM"|"BG/NBD": value})`` per metric the model has.

    The BG/NBD column is BG/NBD's P(no purchase) for churn and BG/NBD +
    Gamma-Gamma CLV for value, on the same validation rows.

    Examples
    --------
    >>> from churnclv.training._mlflow_views import comparison_rows
    >>> comparison_rows({"churn_roc_auc": 0.9, "baseline_rfm_churn_roc_auc": 0.8,
    ...                  "baseline_bgnbd_churn_roc_auc": 0.85})
    [('Churn ROC AUC', 'higher is better', {'model': 0.9, 'RFM': 0.8, 'BG/NBD': 0.85})]
    """
    rows = []
    for kind, table, bgnbd in (("churn", _CHURN_ROWS, "bgnbd"), ("value", _VALUE_ROWS, "bgnbd_gg")):
        for suffix, label, better in table:
            key = f"{kind}_{suffix}"
            model = _metric(metrics, key)
            if model is None:
                continue
            values = {"model": model}
            rfm = _metric(metrics, f"baseline_rfm_{key}")
            if rfm is not None and suffix not in _NOT_FOR_RFM:
                values["RFM"] = rfm
            bg = _metric(metrics, f"baseline_{bgnbd}_{key}")
            if bg is not None:
                values["BG/NBD"] = bg
            rows.append((label, _BETTER_WORDS[better], values))
    return rows


def _best(better: str, values: Mapping[str, float]) -> str:
    def score(v: float) -> float:
        return {"higher is better": v, "lower is better": -v}.get(better, -abs(v - 1.0))

    return max(values, key=lambda k: score(values[k]))


def comparison_html(rows: list[tuple[str, str, dict[str, float]]], title: str) -> str:
    """A self-contained HTML table of :func:`comparison_rows`, the best of each row in bold."""
    head = "".join(f"<th>{h}</th>" for h in ("metric", "model", "RFM", "BG/NBD", "better"))
    body = []
    for label, better, values in rows:
        best = _best(better, values)
        cells = []
        for name in ("model", "RFM", "BG/NBD"):
            v = values.get(name)
            text = "–" if v is None else f"{v:.4g}"
            cells.append(f"<td class='n'>{'<b>' + text + '</b>' if name == best else text}</td>")
        body.append(f"<tr><td>{html.escape(label)}</td>{''.join(cells)}<td>{better}</td></tr>")
    style = (
        "body{font-family:system-ui,sans-serif;margin:24px;color:#222}"
        "table{border-collapse:collapse}th,td{padding:4px 12px;border-bottom:1px solid #ddd;"
        "text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}"
        "th{background:#f4f4f4}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
        "<p>Model and baselines on the same out-of-time validation rows; the best of each row "
        "in bold. RFM ranks churn by recency over the usual gap (not a probability: no Brier, "
        "log loss or calibration) and value by the historical run rate; BG/NBD is P(no "
        "purchase) for churn and BG/NBD + Gamma-Gamma CLV for value.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        "</body></html>"
    )


def log_comparison(metrics: Mapping[str, float], title: str) -> None:
    """Log ``comparison/comparison.html`` and ``comparison/comparison.png`` to the active run."""
    import mlflow

    from churnclv.training._plots import comparison_plot

    rows = comparison_rows(metrics)
    if not rows:
        return
    mlflow.log_text(comparison_html(rows, title), "comparison/comparison.html")
    mlflow.log_figure(comparison_plot(rows), "comparison/comparison.png")


def _vs(metrics: Mapping[str, float], key: str, baselines: tuple[tuple[str, str], ...]) -> str:
    """``0.871 (BG/NBD 0.850, RFM 0.800)`` for ``key``; empty when the model has none."""
    model = _metric(metrics, key)
    if model is None:
        return ""
    others = [
        f"{name} {v:.3f}"
        for name, prefix in baselines
        if (v := _metric(metrics, prefix + key)) is not None
    ]
    return f"{model:.3f}" + (f" ({', '.join(others)})" if others else "")


_CHURN_BASE = (
    ("BG/NBD", "baseline_bgnbd_"),
    ("MBG/NBD", "baseline_mbgnbd_"),
    ("RFM", "baseline_rfm_"),
)
_VALUE_BASE = (
    ("BG/NBD + Gamma-Gamma", "baseline_bgnbd_gg_"),
    ("MBG/NBD + Gamma-Gamma", "baseline_mbgnbd_gg_"),
    ("RFM", "baseline_rfm_"),
)


def run_description(
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    notes: Mapping[str, str],
) -> str:
    """A training run's description in words (Markdown): window, rows, what was measured.

    ``params`` are the run's params (:func:`~churnclv.training._tracking.run_params`),
    ``notes`` the fallbacks and evaluation remarks by kind.
    """
    ch, vh = _days(params["churn_horizon_days"]), _days(params["value_horizon_days"])
    as_of = str(pd.Timestamp(params["as_of"]).date())
    lines = [
        f"**Training as of {as_of}.** Churn = no purchase within {ch} days; value = net spend "
        f"within {vh} days.",
        f"Churn model ({params['churn_model_kind']}): {params['n_train_churn']} training rows; "
        f"validated out of time on {params['n_valid_churn']} customers at "
        f"{params['churn_validation_cutoff']}.",
        f"Value model ({params['value_model_kind']}): {params['n_train_value']} training rows; "
        f"validated on {params['n_valid_value']} customers at "
        f"{params['value_validation_cutoff']}.",
    ]
    measured = [
        (text, vs)
        for text, vs in (
            ("Churn ROC AUC", _vs(metrics, "churn_roc_auc", _CHURN_BASE)),
            (
                "Retained lift in the lowest-risk tenth",
                _vs(metrics, "churn_retained_top_decile_lift", _CHURN_BASE),
            ),
            ("Value Gini", _vs(metrics, "value_gini", _VALUE_BASE)),
            ("Value total predicted / actual", _vs(metrics, "value_total_ratio", _VALUE_BASE)),
        )
        if vs
    ]
    if measured:
        lines.append("")
        lines.extend(f"- {text}: {vs}" for text, vs in measured)
    if notes:
        lines.append("")
        lines.extend(f"- {kind}: {why}" for kind, why in notes.items())
    lines.append("")
    lines.append("Model against baselines, metric by metric: artifact `comparison/`.")
    return "\n".join(lines)


_KIND_WORDS = {
    "churn": "P(no purchase within {ch} days)",
    "value": "expected net spend within {vh} days",
}


def describe_versions(
    versions: Mapping[str, str],
    names: Mapping[str, str],
    metrics: Mapping[str, float],
    verdicts: Mapping[str, str],
) -> None:
    """Describe each registered version in words and add the verdicts to the run's description.

    ``versions`` and ``names`` give each kind's version and registered model,
    ``verdicts`` the promotion verdict by kind (empty without ``--promote``).
    """
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    active = mlflow.active_run()
    if active is None:
        return
    run = client.get_run(active.info.run_id)
    params = run.data.params
    ch, vh = (
        _days(params.get("churn_horizon_days", 90)),
        _days(params.get("value_horizon_days", 365)),
    )
    measured = {
        "churn": ("ROC AUC", _vs(metrics, "churn_roc_auc", _CHURN_BASE)),
        "value": ("Gini", _vs(metrics, "value_gini", _VALUE_BASE)),
    }
    for kind, version in versions.items():
        what = _KIND_WORDS[kind].format(ch=ch, vh=vh)
        model_kind = params.get(f"{kind}_model_kind", "")
        text = (
            f"{kind.capitalize()} model ({model_kind}): {what}, trained in run "
            f"'{run.info.run_name}' on data up to {str(params.get('as_of', ''))[:10]}."
        )
        label, vs = measured[kind]
        if vs:
            text += f" Out of time: {label} {vs}."
        if kind in verdicts:
            text += f" {verdicts[kind][0].upper()}{verdicts[kind][1:]}."
        client.update_model_version(names[kind], version, description=text)
    if verdicts:
        note = run.data.tags.get(NOTE, "")
        lines = [f"- {kind}: {verdict}" for kind, verdict in verdicts.items()]
        mlflow.set_tag(NOTE, note + "\n\n**Promotion**\n\n" + "\n".join(lines))
