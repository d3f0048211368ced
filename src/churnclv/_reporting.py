"""Write a scoring's decision report and log it beside the champion in MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from churnclv.training import Champion

__all__ = ["write_decision_report"]


def write_decision_report(
    scored: pd.DataFrame,
    path: str | Path,
    tracking_uri: str,
    champion: Champion | None,
    notes: list[str] | None = None,
    workdir: str | Path | None = None,
    policy_scored: pd.DataFrame | None = None,
) -> Path:
    """Write the HTML decision report of ``scored``; log it to MLflow when a champion is known.

    The report carries the campaign totals, the decision figures, the
    champion runs' metrics beside the baselines and evaluation plots (those
    the store holds) and ``notes``; the CSV of selected customers is written
    next to it. With ``workdir``, the tier migration since its latest earlier
    score snapshot is shown. With a champion, report, CSV, figures and ``campaign_*``
    totals are logged to the ``churnclv-scoring`` experiment at ``tracking_uri``.
    With an uplift champion, its gate decision is shown with the learned
    actions, beside the policy formula's actions of ``policy_scored`` (the
    same customers scored without the uplift model) when given.

    Returns
    -------
    pathlib.Path
        The report written.
    """
    from churnclv._migration import previous_snapshot
    from churnclv._report import decision_figures, selected_csv_path, write_report
    from churnclv.decisions import campaign_summary
    from churnclv.training import champion_plots, log_report

    summary = campaign_summary(scored)
    plots = champion_plots(tracking_uri, champion) if champion is not None else {}
    metrics = _champion_metrics(tracking_uri, champion) if champion is not None else {}
    figures = decision_figures(scored)  # strips the frame's attrs itself
    written = write_report(
        scored,
        Path(path),
        summary=summary,
        model_plots=plots,
        figures=figures,
        notes=notes,
        model_metrics=metrics,
        uplift_decision=champion.uplift.decision_ if champion and champion.uplift else None,
        policy_scored=policy_scored,
        previous=(
            previous_snapshot(workdir, scored["as_of"].iloc[0])
            if workdir is not None and "as_of" in scored and len(scored)
            else None
        ),
    )
    if champion is not None:
        run_id = log_report(
            tracking_uri,
            written,
            dict(figures),
            {f"campaign_{k}": v for k, v in summary.items()},
            as_of=str(scored["as_of"].max())[:10] if "as_of" in scored else None,
            model_version=champion.model_version,
        )
        _log_csv(tracking_uri, run_id, selected_csv_path(written))
    return written


def _champion_metrics(tracking_uri: str, champion: Champion) -> dict[str, float]:
    """The champion runs' metrics (value run over churn run); empty when the store lacks them."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    metrics: dict[str, float] = {}
    for run_id in dict.fromkeys([champion.churn_run_id, champion.value_run_id]):
        if run_id is None:  # no such champion
            continue
        try:
            metrics |= dict(client.get_run(run_id).data.metrics)
        except Exception:  # a run missing from this store: the report omits the table
            continue
    return metrics


def _log_csv(tracking_uri: str, run_id: str, csv: Path) -> None:
    """Log the selected customers' CSV beside the report, so its link resolves there too."""
    import mlflow

    if csv.exists():
        mlflow.MlflowClient(tracking_uri).log_artifact(run_id, str(csv), "report")
